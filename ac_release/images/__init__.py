"""Docker images of a release: the flavour matrix, the generated Dockerfiles, their tags."""
