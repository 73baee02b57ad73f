"""The swarm coordinator: knows hosts and pieces, decides who goes to the source and who fetches from whom."""
