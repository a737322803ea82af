// The shipping service: quotes and books shipments. Plain Node.js `http`, no OpenTelemetry:
// it only prints plain-text log lines, so the demo shows what Stethoscope sees of a service that
// nobody instrumented.
//
//   node shipping.js --port PORT [--instance NAME]     (fault file: $DEMO_FAULT_FILE)
//
// Faults honoured (read from the fault file every 500 ms, and at start-up for crash_loop):
// latency, errors, hang, crash, crash_loop, stop_logging, clock_skew, memory_leak.
'use strict';

const http = require('http');
const fs = require('fs');
const crypto = require('crypto');

const POLL_MS = 500;
const CRASH_EXIT_CODE = 70;
const LEAK_CAP_MB = 512;
const MAX_BODY_BYTES = 1024 * 1024;

function flag(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const port = Number(flag('--port', ''));
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node shipping.js --port PORT [--instance NAME]');
  process.exit(2);
}
const faultFile = process.env.DEMO_FAULT_FILE || '';
let faults = {};
const leaked = [];
let leakedBytes = 0;

function readFaults() {
  if (!faultFile) return {};
  try {
    const doc = JSON.parse(fs.readFileSync(faultFile, 'utf8'));
    return doc && typeof doc.faults === 'object' && doc.faults ? doc.faults : {};
  } catch (err) {
    return {};
  }
}

// `2026-11-25T19:45:00.123Z INFO shipping: quote for 3 items: 799 cents`
function log(level, message) {
  if (faults.stop_logging) return;
  const skewMs = faults.clock_skew ? Number(faults.clock_skew.offset_s || 0) * 1000 : 0;
  const stamp = new Date(Date.now() + skewMs).toISOString();
  const line = `${stamp} ${level} shipping: ${message}`;
  if (level === 'INFO') console.log(line); else console.error(line);
}

function apply(next) {
  const previous = faults;
  faults = next;
  // A crash loop starts with a first crash; the restarts then fail at start-up.
  if ((faults.crash && !previous.crash) || (faults.crash_loop && !previous.crash_loop)) {
    log('FATAL', `uncaught invariant: ${faults.crash.reason || 'rate table corrupted'}; exiting`);
    process.exit(CRASH_EXIT_CODE);
  }
  if (!faults.memory_leak) { leaked.length = 0; leakedBytes = 0; }
}

function send(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function handle(req, res, body) {
  if (req.url === '/healthz') { res.writeHead(200); res.end('ok'); return; }
  if (faults.memory_leak) {
    const size = Number(faults.memory_leak.kb_per_request || 256) * 1024;
    const cap = Number(faults.memory_leak.max_mb || LEAK_CAP_MB) * 1024 * 1024;
    if (leakedBytes + size <= cap) { leaked.push(Buffer.alloc(size, 'x')); leakedBytes += size; }
  }
  if (faults.errors && Math.random() < Number(faults.errors.fraction || 0.5)) {
    log('ERROR', `rate table lookup failed for ${req.method} ${req.url}`);
    send(res, 500, { error: 'internal error' });
    return;
  }
  let request;
  try { request = body.length ? JSON.parse(body) : {}; } catch (err) {
    log('WARN', `bad request body on ${req.url}: ${err.message}`);
    send(res, 400, { error: 'invalid JSON' });
    return;
  }
  if (req.method === 'POST' && req.url === '/quote') {
    const items = Math.max(1, Number(request.items || 1));
    const cost = 499 + 150 * (items - 1);
    log('INFO', `quote for ${items} items: ${cost} cents`);
    send(res, 200, { cost_cents: cost });
  } else if (req.method === 'POST' && req.url === '/shipments') {
    const id = 'sh_' + crypto.randomBytes(6).toString('hex');
    log('INFO', `booked shipment ${id} for order ${request.order_id}`);
    send(res, 201, { shipment_id: id, order_id: request.order_id });
  } else {
    log('WARN', `no route for ${req.method} ${req.url}`);
    send(res, 404, { error: 'not found' });
  }
}

// A hang accepts the request and answers nothing until the fault is reverted.
function whenNotHung(fn) {
  if (faults.hang) { setTimeout(() => whenNotHung(fn), 200); return; }
  fn();
}

function delayed(fn) {
  if (!faults.latency) { fn(); return; }
  const delay = Number(faults.latency.delay_ms || 500) * (0.8 + 0.4 * Math.random());
  setTimeout(fn, delay);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY_BYTES) { send(res, 413, { error: 'body too large' }); return; }
    const body = Buffer.concat(chunks).toString('utf8');
    whenNotHung(() => (req.url === '/healthz' ? handle(req, res, body) : delayed(() => handle(req, res, body))));
  });
});

const initial = readFaults();
if (initial.crash_loop) {
  // What a bad deployment does at start-up: the same uncaught error on every restart.
  throw new Error(`cannot read rate table: ${initial.crash_loop.setting || 'RATES_PATH'} is not set`);
}
delete initial.crash; // an earlier run of this instance already crashed
faults = initial;
setInterval(() => apply(readFaults()), POLL_MS);

function shutdown(signal) {
  log('INFO', `received ${signal}, shutting down`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(port, '127.0.0.1', () => log('INFO', `listening on 127.0.0.1:${port} as ${flag('--instance', 'shipping')}`));
