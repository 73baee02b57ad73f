"""The host's agent: runs the jobs the supernode hands this host (supernode/jobs.py) and reports their progress."""
