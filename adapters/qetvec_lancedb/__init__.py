"""LanceDB integration of qetvec."""
