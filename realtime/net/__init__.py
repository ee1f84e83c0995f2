"""Network paths: outbound access on a tenant's behalf behind one policy, and ICE servers for WebRTC."""
