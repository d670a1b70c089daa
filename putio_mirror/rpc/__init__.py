"""The Transmission RPC door: media managers add torrents and watch them arrive."""
