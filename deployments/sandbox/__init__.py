"""The local sandbox: AWS on loopback (moto), the Python provider, emulators."""
