"""onexen: OpenNebula's Xen driver as gRPC microservices.

`onexen.v1` holds the generated protobuf code (see `make protos`); `onexen.runtime`
is the service runtime every service shares.
"""
