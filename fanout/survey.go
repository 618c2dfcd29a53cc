package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// A survey asks every node of the cluster the same question and gathers
// the answers (the admin API's cluster-wide node and room listings). It is
// scatter-gather on P.survey: the asker does not know how many nodes there
// are, so it collects for a fixed time.

// SurveyFunc answers a survey with this node's report (JSON, say). Keep it
// well under Embedded.MaxPayload: a larger answer is not sent.
type SurveyFunc func() []byte

// maxSurveyAnswers bounds what one survey collects: answers past it are
// not read (the asker sees at most this many nodes).
const maxSurveyAnswers = 1024

// SetSurvey sets how this node answers surveys (nil = it does not answer).
// Safe to call at any time.
func (n *Node) SetSurvey(fn SurveyFunc) { n.survey.Store(&fn) }

// answer is this node's survey answer, false when it has no SurveyFunc.
func (n *Node) answer() ([]byte, bool) {
	if fn := n.survey.Load(); fn != nil && *fn != nil {
		return (*fn)(), true
	}
	return nil, false
}

func (n *Node) onSurvey(m *nats.Msg) {
	b, ok := n.answer()
	if !ok || m.Reply == "" {
		return
	}
	if err := m.Respond(b); err != nil {
		n.log.Warn("survey answer not sent", "err", err)
	}
}

// Survey asks every node (this one included) and returns the answers that
// arrived within wait (or before ctx is done), at most 1,024.
func (n *Node) Survey(ctx context.Context, wait time.Duration) ([][]byte, error) {
	if n.closed.Load() {
		return nil, errors.New("survey: node closed")
	}
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("survey: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(maxSurveyAnswers, 64<<20); err != nil {
		return nil, fmt.Errorf("survey: %w", err)
	}
	if err := n.nc.PublishRequest(n.subj.survey, inbox, nil); err != nil {
		return nil, fmt.Errorf("survey: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out [][]byte
	// The connection has NoEcho: this node answers itself in-process.
	if b, ok := n.answer(); ok {
		out = append(out, b)
	}
	for len(out) < maxSurveyAnswers {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over
		}
		out = append(out, m.Data)
	}
	return out, nil
}
