"""Where stage attempts live: the artifact root, its run layout and the manifests."""
