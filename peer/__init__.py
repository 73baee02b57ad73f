"""The host's piece store, the upload server that serves pieces to other peers, and the downloader."""
