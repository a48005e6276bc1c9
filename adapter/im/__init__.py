"""one_im_grpc: onemonitord's IM_MAD protocol over the onexen monitor service."""
