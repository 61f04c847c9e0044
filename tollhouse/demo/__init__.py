"""``tollhouse demo``: a local demo model, the proxy, scripted traffic and a summary."""
