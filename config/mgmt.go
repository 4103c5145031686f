package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// API is the resolved [api] section: the management socket l2tpctl uses.
type API struct {
	// Socket is the Unix socket path; "" disables the management API.
	Socket string
	// SocketMode is the socket file's permission bits (default 0600: root
	// only). Connecting needs write permission.
	SocketMode fs.FileMode
	// SocketGroup, if set, owns the socket (with SocketMode 0660, its
	// members may use l2tpctl). The daemon resolves the name.
	SocketGroup string
}

// Metrics is the resolved [metrics] section: the Prometheus endpoint.
type Metrics struct {
	// Listen is the HTTP address; zero: no metrics endpoint.
	Listen netip.AddrPort
	// Path is the URL path of the exposition (default "/metrics").
	Path string
}

// Defaults of [api] and [metrics].
const (
	DefaultAPISocket   = "/run/l2tpd/l2tpd.sock"
	DefaultSocketMode  = fs.FileMode(0o600)
	DefaultMetricsPath = "/metrics"
)

var (
	apiKeys     = []string{"socket", "socket_mode", "socket_group"}
	metricsKeys = []string{"listen", "path"}
)

// DefaultAPI returns the [api] defaults.
func DefaultAPI() API {
	return API{Socket: DefaultAPISocket, SocketMode: DefaultSocketMode}
}

// mgmt reads [api] and [metrics] into c.
func (r *reader) mgmt(root *table, c *Config) {
	c.API = DefaultAPI()
	c.Metrics = Metrics{Path: DefaultMetricsPath}
	if t := root.sub("api"); t != nil {
		var s string
		if t.str("socket", &s) {
			if s != "" && !filepath.IsAbs(s) {
				t.errf("socket", "%s: give an absolute path (or \"\" to turn the management API off)", tomlString(s))
			} else {
				c.API.Socket = s
			}
		}
		if t.str("socket_mode", &s) {
			m, err := strconv.ParseUint(s, 8, 32)
			switch {
			case err != nil:
				t.errf("socket_mode", "%s is not an octal mode; write it like \"0660\"", tomlString(s))
			case m&^0o777 != 0:
				t.errf("socket_mode", "%s: only permission bits (0000..0777) are allowed", tomlString(s))
			case m&0o200 == 0:
				t.errf("socket_mode", "%s: the owner (root) needs write permission to connect", tomlString(s))
			default:
				c.API.SocketMode = fs.FileMode(m)
			}
		}
		if t.str("socket_group", &s) {
			if strings.ContainsAny(s, ": \t\n/") {
				t.errf("socket_group", "%s is not a group name", tomlString(s))
			} else {
				c.API.SocketGroup = s
			}
		}
		t.finish(apiKeys, nil)
	}
	if t := root.sub("metrics"); t != nil {
		var s string
		if t.str("listen", &s) && s != "" {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 {
				t.errf("listen", "%s: want \"address:port\" like \"127.0.0.1:9641\" or \"[::]:9641\" (\"\" turns metrics off)", tomlString(s))
			} else {
				c.Metrics.Listen = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
		}
		if t.str("path", &s) {
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\n?#") {
				t.errf("path", "%s: want a URL path starting with /, like \"/metrics\"", tomlString(s))
			} else {
				c.Metrics.Path = s
			}
		}
		t.finish(metricsKeys, nil)
	}
}

// mgmt writes [api] and [metrics].
func (d *dumper) mgmt(c *Config) {
	d.b.WriteString("\n[api]\n")
	d.kv("socket", tomlString(c.API.Socket))
	d.kv("socket_mode", tomlString(fmt.Sprintf("%04o", uint32(c.API.SocketMode))))
	d.kv("socket_group", tomlString(c.API.SocketGroup))
	d.b.WriteString("\n[metrics]\n")
	listen := ""
	if c.Metrics.Listen.IsValid() {
		listen = c.Metrics.Listen.String()
	}
	d.kv("listen", tomlString(listen))
	d.kv("path", tomlString(c.Metrics.Path))
}
