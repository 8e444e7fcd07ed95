"""Release pipeline of Astronomer Certified (AC): one AC version in, signed wheels, index files and images out."""
