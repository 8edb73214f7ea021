"""An emulator of the InstaMsg REST API, stateful, with fault injection."""
