"""The runtime: sandboxes (pause), containers (monitor + init), pod lifecycle and state."""
