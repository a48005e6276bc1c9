"""What both adapters share: line I/O, option parsing, log file, gRPC calls."""
