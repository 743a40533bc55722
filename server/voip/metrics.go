package voip

import "sync/atomic"

// Stats are the TURN server's counters since it started, for the admin API and metrics.
type Stats struct {
	Allocations       int64 // allocations created
	ActiveAllocations int64 // allocations held now
	BytesToPeers      int64 // payload relayed from clients to peers
	BytesFromPeers    int64 // payload relayed from peers to clients
	DroppedBandwidth  int64 // datagrams dropped by a user's bandwidth limit
	RefusedAuth       int64 // requests with bad, expired, forged or foreign credentials
	RefusedQuota      int64 // allocations refused by the per-user quota
	RefusedPeer       int64 // permissions, channels and datagrams refused by the peer policy
}

// metrics are the live counters behind Stats.
type metrics struct {
	allocations, active                    atomic.Int64
	bytesToPeers, bytesFromPeers           atomic.Int64
	droppedBandwidth                       atomic.Int64
	refusedAuth, refusedQuota, refusedPeer atomic.Int64
}

func (m *metrics) snapshot() Stats {
	return Stats{
		Allocations:       m.allocations.Load(),
		ActiveAllocations: m.active.Load(),
		BytesToPeers:      m.bytesToPeers.Load(),
		BytesFromPeers:    m.bytesFromPeers.Load(),
		DroppedBandwidth:  m.droppedBandwidth.Load(),
		RefusedAuth:       m.refusedAuth.Load(),
		RefusedQuota:      m.refusedQuota.Load(),
		RefusedPeer:       m.refusedPeer.Load(),
	}
}
