"""What `steth run` injects into the processes it supervises: see `inject.child_environment`."""
