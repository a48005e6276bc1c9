"""one_vmm_grpc: OpenNebula's VM_MAD protocol over the onexen services."""
