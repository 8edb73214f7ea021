"""Below the engine: the one InstaMsg client (requests), its retry policy and transport tuning,
uploadFile's URL fetch, and the sandbox as a transport adapter."""
