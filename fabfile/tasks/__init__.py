"""The Invoke tasks: thin wrappers that read options, call the core, print."""
