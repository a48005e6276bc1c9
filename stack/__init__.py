"""The local stack: three services and simulated Xen hosts, for `make up` and `make demo`."""
