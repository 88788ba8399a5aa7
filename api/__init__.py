"""The hftx web node: HTTP ``/api/v1``, WebSocket ``/ws``, static UI (PROTOCOL.md)."""
