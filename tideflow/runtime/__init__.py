"""Running a flow: replica processes, the pull/process/write/ack loop, the HTTP server."""
