"""The local stack: moto, an HTTP API emulator, the stream poller and (later) the CCBill sandbox."""
