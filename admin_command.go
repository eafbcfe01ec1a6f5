package deviceflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-device-flow/caddy-device-flow/devicelogin"
	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The `caddy device-flow` command: the admin API's routes (admin_api.go)
// from the command line, through the running Caddy's admin endpoint.

const adminCommandHelp = `
Lists the live device codes of the running Caddy's device_flow handlers,
or denies one, through Caddy's admin API (like 'caddy reload', it talks to
the admin endpoint: --address, or the one in --config, or the default).

  caddy device-flow list [--handler <name>] [--page <codes per request>]
      a table of the live codes: user code, client, scopes, state
      (pending, approved, denied), the address that asked for it, whether
      the device has polled, created and expiry times, printed page by
      page as the admin API gives them; records that could not be decoded
      show as 'unreadable'. Then the number of live codes, and the wrong
      user codes counted in the guess window running now and the
      addresses refused until it ends; of every handler unless --handler
      is given.

  caddy device-flow deny <user code> [--handler <name>]
      denies a pending or approved code: the device gets access_denied,
      and tokens waiting for it are destroyed. --handler is needed when
      more than one handler runs.

A handler is named by its 'name', or, without one, by the ID that
'list' shows.
`

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "device-flow",
		Usage: "list|deny <user code> [--handler <name>] [--address <admin address>]",
		Short: "Lists or denies the device codes of the running device_flow handlers",
		Long:  adminCommandHelp,
		CobraFunc: func(cmd *cobra.Command) {
			fs := cmd.PersistentFlags()
			fs.String("handler", "", "The device_flow handler: its name, or the ID 'list' shows")
			fs.String("address", "", "The address of Caddy's admin API")
			fs.StringP("config", "c", "", "Configuration file, to find the admin API's address")
			fs.StringP("adapter", "a", "", "Name of config adapter to apply")
			list := &cobra.Command{
				Use:   "list",
				Short: "Lists the live device codes",
				Args:  cobra.NoArgs,
				RunE:  func(cmd *cobra.Command, _ []string) error { return adminList(cmd) },
			}
			list.Flags().Int("page", DefaultCodesPage, fmt.Sprintf("Codes asked for per request to the admin API (1 to %d)", MaxCodesPage))
			cmd.AddCommand(list)
			cmd.AddCommand(&cobra.Command{
				Use:   "deny <user code>",
				Short: "Denies a pending or approved device code",
				Args:  cobra.ExactArgs(1),
				RunE:  func(cmd *cobra.Command, args []string) error { return adminDeny(cmd, args[0]) },
			})
		},
	})
}

// adminList prints the table of live codes, a page at a time as the
// admin API gives them.
func adminList(cmd *cobra.Command) error {
	cmd.SilenceUsage = true
	ids, err := adminHandlerIDs(cmd)
	if err != nil {
		return err
	}
	pageSize, _ := cmd.Flags().GetInt("page")
	out := cmd.OutOrStdout()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLER\tUSER CODE\tCLIENT\tSCOPE\tSTATE\tISSUED TO\tPOLLED\tCREATED\tEXPIRES")
	live, unreadable := 0, 0
	var limits []string
	for _, id := range ids {
		// A code Redis gave on two pages is printed once (see
		// docs/operations.md).
		printed := make(map[string]bool)
		for after, first := "", true; first || after != ""; first = false {
			q := url.Values{"limit": {strconv.Itoa(pageSize)}}
			if after != "" {
				q.Set("after", after)
			}
			uri := adminPrefix + url.PathEscape(id) + "/codes?" + q.Encode()
			var page AdminCodes
			if err := adminCall(cmd, http.MethodGet, uri, &page); err != nil {
				return err
			}
			if first && page.Live != nil && page.Unreadable != nil && page.GuessLimits != nil {
				live, unreadable = live+*page.Live, unreadable+*page.Unreadable
				limits = append(limits, guessLimitsLine(id, *page.GuessLimits))
			}
			for _, c := range page.Codes {
				if !printed[c.UserCode] {
					printed[c.UserCode] = true
					codeRow(tw, id, c)
				}
			}
			for _, userCode := range page.UnreadableCodes {
				if !printed[userCode] {
					printed[userCode] = true
					tableRow(tw, id, userCode, "-", "-", "unreadable", "-", "-", "-", "-")
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != "" && page.Next == after {
				return fmt.Errorf("the admin API gave the same page twice (handler %s)", devicelogin.Printable(id))
			}
			after = page.Next
		}
	}
	noun := "codes"
	if live == 1 {
		noun = "code"
	}
	summary := fmt.Sprintf("%d live %s", live, noun)
	if unreadable > 0 {
		summary += fmt.Sprintf("; %d unreadable (records that could not be decoded)", unreadable)
	}
	fmt.Fprintln(out, summary)
	for _, line := range limits {
		fmt.Fprintln(out, line)
	}
	return nil
}

// codeRow writes the table's row of one code.
func codeRow(w io.Writer, id string, c flow.CodeInfo) {
	client := c.ClientID
	if c.ClientName != "" {
		client += " (" + c.ClientName + ")"
	}
	polled := "no"
	if c.Polled {
		polled = c.LastPoll.Local().Format(time.TimeOnly)
	}
	tableRow(w, id, c.UserCode, client, dash(c.Scope), c.Status, dash(c.IssuedTo), polled,
		c.CreatedAt.Local().Format(time.DateTime), c.ExpiresAt.Local().Format(time.DateTime))
}

// tableRow writes one row of the table. Every field goes through
// devicelogin.Printable: what the store holds (a user code read from a
// Redis key, issued_to) and what a device sent (client_id, scope) reach
// the operator's terminal, and no control character of theirs may.
func tableRow(w io.Writer, fields ...string) {
	for i, f := range fields {
		fields[i] = devicelogin.Printable(f)
	}
	fmt.Fprintln(w, strings.Join(fields, "\t"))
}

// guessLimitsLine says what the guess limits of one handler count now.
func guessLimitsLine(id string, g flow.GuessLimits) string {
	if g.Off {
		return devicelogin.Printable(id) + ": limits off"
	}
	noun := "codes"
	if g.Total == 1 {
		noun = "code"
	}
	id = devicelogin.Printable(id)
	line := fmt.Sprintf("%s: %d wrong user %s in the guess window ending %s (guess_limit_total %d)",
		id, g.Total, noun, g.WindowEnds.Local().Format(time.TimeOnly), g.TotalLimit)
	why := fmt.Sprintf("guess_limit %d", g.PerAddress)
	if g.TotalInForce {
		line += "; the total is spent"
		why = fmt.Sprintf("%d wrong codes past the total", g.AllowancePastTotal)
	}
	var refused []string
	for _, a := range g.Addresses {
		if a.InForce {
			refused = append(refused, devicelogin.Printable(a.Address)) // from the store's keys
		}
	}
	if len(refused) > 0 {
		line += fmt.Sprintf("; refused until then (%s): %s", why, strings.Join(refused, ", "))
	}
	return line
}

// adminDeny denies one code.
func adminDeny(cmd *cobra.Command, userCode string) error {
	cmd.SilenceUsage = true
	ids, err := adminHandlerIDs(cmd)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%d device_flow handlers run; say which with --handler", len(ids))
	}
	var info flow.CodeInfo
	if err := adminCall(cmd, http.MethodPost, adminPrefix+url.PathEscape(ids[0])+"/codes/"+url.PathEscape(userCode)+"/deny", &info); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s is %s\n", devicelogin.Printable(ids[0]), devicelogin.Printable(info.UserCode), devicelogin.Printable(info.Status))
	return nil
}

// adminHandlerIDs is the --handler given, or every handler running.
func adminHandlerIDs(cmd *cobra.Command) ([]string, error) {
	if id, _ := cmd.Flags().GetString("handler"); id != "" {
		return []string{id}, nil
	}
	var all []AdminHandlerInfo
	if err := adminCall(cmd, http.MethodGet, adminPrefix, &all); err != nil {
		return nil, err
	}
	ids := make([]string, len(all))
	for i, h := range all {
		ids[i] = h.Handler
	}
	return ids, nil
}

// adminCall sends one request to the admin API and decodes its JSON
// answer into out, or turns its error answer into an error.
func adminCall(cmd *cobra.Command, method, uri string, out any) error {
	fl := caddycmd.Flags{FlagSet: cmd.Flags()}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return fmt.Errorf("finding the admin API's address: %v", err)
	}
	// Every call has a client of its own (caddycmd's): without close, a
	// listing of many pages would leave Caddy holding an idle connection,
	// and its buffers, per page.
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, http.Header{"Connection": {"close"}}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &apiErr) != nil || apiErr.Error == "" {
			return fmt.Errorf("admin API: %s", resp.Status)
		}
		return errors.New(apiErr.Error)
	}
	return json.Unmarshal(body, out)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
