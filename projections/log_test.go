package projections_test

import (
	"testing"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/events/eventstest"
	"github.com/dss-sync/dss-sync/projections"
)

func TestMemoryLogConformance(t *testing.T) {
	eventstest.Run(t, eventstest.Harness{
		Open: func(testing.TB) events.Log { return projections.NewLog(projections.NewMemory()) },
	})
}
