// Package jetstream is dss-sync's adapter to NATS JetStream: the embedded
// server a site runs by default, the subjects and streams sites use, and the
// outbox that publishes a site's committed events.
//
// JetStream is the transport, not the record: Pebble, fsynced before any
// write is acknowledged, is. The outbox publishes only durable events, so a
// crash of the site can never take back an event a peer has seen.
package jetstream
