package flow

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The operator's view of a handler (the admin API): the codes alive now,
// and denying one. What it shows leaves out every secret a record holds:
// the device code's hash, the sealing key and the sealed tokens.

// CodeInfo is what an operator sees of one live device authorization.
type CodeInfo struct {
	UserCode   string    `json:"user_code"` // as people type it (XXXX-XXXX)
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name,omitempty"` // from the configuration
	Scope      string    `json:"scope,omitempty"`
	Status     string    `json:"status"` // pending, approved or denied
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IssuedTo   string    `json:"issued_to,omitempty"` // the address that asked for the code
	Polled     bool      `json:"polled"`              // the device has polled at least once
	LastPoll   time.Time `json:"last_poll,omitzero"`
}

// OperatorReason is the error_description a device gets for a code an
// operator denied.
const OperatorReason = "denied by the server's operator"

// CodesPage is one page of the operator's listing.
type CodesPage struct {
	Codes []CodeInfo // the live ones, in the store's order
	// Unreadable holds the user codes of the page's records that could
	// not be decoded (as the store's keys have them, with dashes).
	Unreadable []string
	Next       string // the cursor of the next page; "" after the last
}

// Codes lists a page of the authorizations that have not expired: those
// of the store's page of at most limit records after cursor ("" for the
// first page; see Store.Devices). A page may hold fewer live codes than
// limit, none even, and still have a next one.
func (s *Service) Codes(ctx context.Context, cursor string, limit int) (CodesPage, error) {
	now := s.cfg.Now()
	p, err := s.cfg.Store.Devices(ctx, cursor, limit)
	if err != nil {
		return CodesPage{}, err
	}
	out := CodesPage{Codes: []CodeInfo{}, Unreadable: []string{}, Next: p.Next}
	for _, d := range p.Devices {
		if now.Before(d.ExpiresAt) {
			out.Codes = append(out.Codes, s.codeInfo(d))
		}
	}
	for _, userCode := range p.Unreadable {
		out.Unreadable = append(out.Unreadable, s.cfg.UserCode.Display(userCode))
	}
	return out, nil
}

// countPage is how many records CountCodes reads at a time.
const countPage = 1000

// CountCodes counts the authorizations that have not expired and the
// records that could not be decoded, over every page of the store, so
// that what it takes is one page whatever the number of codes.
func (s *Service) CountCodes(ctx context.Context) (live, unreadable int, err error) {
	for cursor, first := "", true; first || cursor != ""; first = false {
		p, err := s.cfg.Store.Devices(ctx, cursor, countPage)
		if err != nil {
			return 0, 0, err
		}
		now := s.cfg.Now()
		for _, d := range p.Devices {
			if now.Before(d.ExpiresAt) {
				live++
			}
		}
		unreadable += len(p.Unreadable)
		cursor = p.Next
	}
	return live, unreadable, nil
}

// codeInfo is the operator's view of d.
func (s *Service) codeInfo(d *Device) CodeInfo {
	return CodeInfo{
		UserCode:   s.cfg.UserCode.Display(d.UserCode),
		ClientID:   d.ClientID,
		ClientName: s.cfg.Clients[d.ClientID].Name,
		Scope:      d.Scope,
		Status:     d.Status.String(),
		CreatedAt:  d.CreatedAt,
		ExpiresAt:  d.ExpiresAt,
		IssuedTo:   d.IssuedTo,
		Polled:     !d.LastPoll.IsZero(),
		LastPoll:   d.LastPoll,
	}
}

// DenyCode denies the live authorization under the user code (as typed:
// it is normalized), pending or approved: its device is answered
// access_denied, and tokens waiting for it are destroyed. Denying a
// denied code changes nothing. It returns the code as it now stands, or
// ErrNotFound when no live code has that user code.
func (s *Service) DenyCode(ctx context.Context, userCode string) (CodeInfo, error) {
	normalized := s.cfg.UserCode.Normalize(userCode)
	if normalized == "" {
		return CodeInfo{}, ErrNotFound
	}
	now := s.cfg.Now()
	var info CodeInfo
	changed := false
	var denied *Device
	err := s.cfg.Store.UpdateDevice(ctx, normalized, func(d *Device) (Verdict, error) {
		changed, denied = false, d
		if d == nil || !now.Before(d.ExpiresAt) {
			return Keep, ErrNotFound
		}
		if d.Status != Denied {
			d.Status, d.Sealed, d.Reason, changed = Denied, nil, OperatorReason, true
		}
		info = s.codeInfo(d)
		if !changed {
			return Keep, nil
		}
		return Save, nil
	})
	if err != nil {
		return CodeInfo{}, err
	}
	if changed {
		s.cfg.Observer.Event(EventDenied)
		s.log.Info("an operator denied a device code", zap.String("client_id", info.ClientID))
		s.audit(AuditCodeDenied, denied, denied.IssuedTo, "", zap.String("by", "operator"))
	}
	return info, nil
}

// GuessLimits is the operator's view of the guess limits in the window
// running now: how many wrong user codes were counted, in total and per
// address, and which addresses are refused until the window ends.
type GuessLimits struct {
	Off          bool      `json:"off,omitempty"` // limits off: nothing is counted
	WindowEnds   time.Time `json:"window_ends,omitzero"`
	Total        int64     `json:"wrong_guesses"`     // counted in this window, all addresses
	TotalLimit   int       `json:"guess_limit_total"` // past it, addresses are held to AllowancePastTotal
	TotalInForce bool      `json:"total_in_force"`    // the total is spent: AllowancePastTotal holds now
	PerAddress   int       `json:"guess_limit"`
	// AllowancePastTotal: the wrong codes an address may have and still
	// look codes up once the total is spent (IPv6 /56s and /48s 4 and 16
	// times as many).
	AllowancePastTotal int `json:"guess_allowance_past_total"`
	// Addresses (IPv4) and prefixes (IPv6 /64, /56 and /48) that guessed
	// wrong in this window, most guesses first; InForce when they are
	// refused until WindowEnds.
	Addresses []AddressGuesses `json:"addresses"`
}

// AddressGuesses is one address's wrong guesses in the window.
type AddressGuesses struct {
	Address string `json:"address"`
	Guesses int64  `json:"wrong_guesses"`
	InForce bool   `json:"in_force"`
}

// Guesses reads the guess counters of the window running now.
func (s *Service) Guesses(ctx context.Context) (GuessLimits, error) {
	l := s.cfg.Limits
	if l.Off {
		return GuessLimits{Off: true, Addresses: []AddressGuesses{}}, nil
	}
	w, ends := window(s.cfg.Now(), l.GuessWindow)
	g := GuessLimits{WindowEnds: ends, TotalLimit: l.GuessesTotal, PerAddress: l.GuessesPerIP,
		AllowancePastTotal: l.guessAllowanceOf(), Addresses: []AddressGuesses{}}
	n, err := s.tally(ctx, Read(guessTotalKey(w)))
	if err != nil {
		return GuessLimits{}, err
	}
	g.Total, g.TotalInForce = n[0], n[0] >= int64(l.GuessesTotal)
	// An address is refused at the count where guessesLeft refuses it.
	refusedAt := l.GuessesPerIP
	if g.TotalInForce {
		refusedAt = g.AllowancePastTotal
	}
	suffix := ":" + w
	err = s.cfg.Store.Counters(ctx, guessKeyPrefix, func(key string, value int64) bool {
		if subject, ok := strings.CutSuffix(strings.TrimPrefix(key, guessKeyPrefix), suffix); ok {
			inForce := value >= int64(refusedAt*subjectFactor(subject))
			g.Addresses = append(g.Addresses, AddressGuesses{Address: subject, Guesses: value, InForce: inForce})
		}
		return true
	})
	if err != nil {
		return GuessLimits{}, err
	}
	slices.SortFunc(g.Addresses, func(a, b AddressGuesses) int {
		if c := cmp.Compare(b.Guesses, a.Guesses); c != 0 {
			return c
		}
		return strings.Compare(a.Address, b.Address)
	})
	return g, nil
}
