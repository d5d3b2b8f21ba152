package main

import (
	"context"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// healthCollector exports, at each scrape, what an operator alerts on
// besides replication: readiness, the bus connection, the store's disk
// usage, read amplification and compaction debt, the free space where the
// data dir is, and the open conflicts of every project.
type healthCollector struct{ m *Main }

var (
	descReady = prometheus.NewDesc("dss_ready",
		"1 when the site is ready (store readable, NATS connected, writes not held after a restore).", nil, nil)
	descNATS = prometheus.NewDesc("dss_nats_connected",
		"1 when the site's own connection to its NATS JetStream server is up.", nil, nil)
	descStoreDisk = prometheus.NewDesc("dss_store_disk_bytes",
		"Disk space the Pebble store uses.", nil, nil)
	descReadAmp = prometheus.NewDesc("dss_store_read_amplification",
		"Pebble read amplification (sublevels and levels a read may visit).", nil, nil)
	descCompactionDebt = prometheus.NewDesc("dss_store_compaction_debt_bytes",
		"Pebble's estimate of the bytes compactions must still rewrite.", nil, nil)
	descFree = prometheus.NewDesc("dss_data_dir_free_bytes",
		"Free bytes, for an unprivileged user, on the file system holding the data dir.", nil, nil)
	descConflicts = prometheus.NewDesc("dss_conflicts_open",
		"Open conflicts, per project.", []string{"project"}, nil)
)

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReady, descNATS, descStoreDisk, descReadAmp, descCompactionDebt, descFree, descConflicts} {
		ch <- d
	}
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ready := 0.0
	if c.m.ready(ctx) == nil {
		ready = 1
	}
	gauge(descReady, ready)
	nats := 0.0
	if c.m.Conn != nil && c.m.Conn.IsConnected() {
		nats = 1
	}
	gauge(descNATS, nats)
	if db := c.m.Store.DB(); db != nil {
		pm := db.Metrics()
		gauge(descStoreDisk, float64(pm.DiskSpaceUsage()))
		gauge(descReadAmp, float64(pm.ReadAmp()))
		gauge(descCompactionDebt, float64(pm.Compact.EstimatedDebt))
	}
	var st syscall.Statfs_t
	if syscall.Statfs(c.m.Config.DataDir, &st) == nil {
		gauge(descFree, float64(st.Bavail)*float64(st.Bsize))
	}
	if ps, err := c.m.Site.Projects(ctx); err == nil {
		for _, p := range ps {
			if cs, err := c.m.Site.Conflicts(ctx, p.ID); err == nil {
				gauge(descConflicts, float64(len(cs)), p.ID)
			}
		}
	}
}
