"""Container networking: bridge networks, IPAM, network namespaces, published ports, embedded DNS."""
