"""Local networks: the multi-process devnet launcher (``pouw-devnet``) and the docker-compose files."""
