package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// giftWebhook asks the app's backend about each gift: a POST of
// {"room","user","name","gift","count","key"} answered by 200
// {"allow": true|false, "reason": "..."}. Anything else (another status,
// a body that does not say allow, an error, a timeout) denies: the sender's
// ack says gift_denied. The manager calls it off the room goroutine, with
// its own deadline and bounded concurrency, and counts each outcome
// (danmaku_room_gift_auth_total).
type giftWebhook struct {
	url     string
	client  *http.Client
	maxBody int64
}

func newGiftWebhook(cfg webhookConfig, maxBody int64) *giftWebhook {
	return &giftWebhook{url: cfg.URL, maxBody: maxBody, client: &http.Client{
		Timeout:   cfg.Timeout, // the manager's context bounds it too
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency},
	}}
}

type giftCall struct {
	Room  string `json:"room"`
	User  string `json:"user"`
	Name  string `json:"name"`
	Gift  string `json:"gift"`
	Count uint32 `json:"count"`
	Key   string `json:"key"`
}

func (g *giftWebhook) AuthorizeGift(ctx context.Context, req manager.GiftRequest) error {
	body, _ := json.Marshal(giftCall{Room: req.Room, User: req.User, Name: req.Name, Gift: req.Gift, Count: req.Count, Key: req.Key})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gift webhook: %w: %w", err, proto.CodeGiftDenied)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Idempotency-Key", req.Key)
	resp, err := g.client.Do(hr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("gift webhook did not answer in time: %w", proto.CodeGiftDenied)
		}
		return fmt.Errorf("gift webhook: %w: %w", err, proto.CodeGiftDenied)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gift webhook answered HTTP %d: %w", resp.StatusCode, proto.CodeGiftDenied)
	}
	var ans struct {
		Allow  bool   `json:"allow"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, g.maxBody)).Decode(&ans); err != nil {
		return fmt.Errorf("gift webhook answer: %w: %w", err, proto.CodeGiftDenied)
	}
	if !ans.Allow {
		return fmt.Errorf("gift webhook denied: %s: %w", ans.Reason, proto.CodeGiftDenied)
	}
	return nil
}
