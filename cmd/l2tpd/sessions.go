package main

import (
	"fmt"
	"net"
	"strconv"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/pool"
	"github.com/l2tpd/l2tpd/pppsession"
)

// newSessionEnv builds what every PPP session shares: the local
// authenticator from [[subscriber]], the pools from [[pool]], and RADIUS
// (for profiles with authenticator = "radius", and accounting when a
// server has an acct_port). Sessions read the configuration through
// d.cfg, so that a reload reaches new sessions only.
func (d *daemon) newSessionEnv(cfg *config.Config) error {
	log := d.log
	authn, err := localAuthenticator(cfg)
	if err != nil {
		return err
	}
	pools, err := pool.NewSet(poolConfigs(cfg))
	if err != nil {
		return fmt.Errorf("address pools: %w", err)
	}
	for _, name := range pools.Names() {
		p, _ := pools.Get(name)
		log.Info("address pool", zap.String("pool", name), zap.Int("addresses", p.Stats().Size), zap.Stringer("gateway", p.Gateway()))
	}
	log.Info("local subscribers", zap.Int("count", authn.Len()))
	pc := pppsession.Config{
		Config: d.cfg.Load,
		Auth:   authn,
		Acct:   auth.NopAccounter{},
		Pools:  pools,
		Log:    log,
		Events: d.obs,
	}
	rad := d.rad
	if rad != nil && rad.client != nil {
		if a, _ := radiusRoles(&cfg.RADIUS); a {
			d.radA = &radiusAuth{Authenticator: rad.client, server: radiusServerLabel(&cfg.RADIUS), m: d.m}
			pc.RADIUS = d.radA
		}
		if rad.acct {
			pc.Acct = rad.client
			pc.InterimInterval = cfg.RADIUS.InterimInterval
		}
	}
	d.authn, d.pools = authn, pools
	d.env = pppsession.NewEnv(pc)
	return nil
}

// radiusServerLabel names the RADIUS authentication servers for metrics:
// the first configured one, "+N" when there are more.
func radiusServerLabel(rc *config.RADIUS) string {
	var first string
	n := 0
	for _, s := range rc.Servers {
		if s.AuthPort == 0 {
			continue
		}
		if n == 0 {
			first = net.JoinHostPort(s.Address.String(), strconv.Itoa(int(s.AuthPort)))
		}
		n++
	}
	if n > 1 {
		return fmt.Sprintf("%s+%d", first, n-1)
	}
	return first
}

func localSubscribers(cfg *config.Config) []local.Subscriber {
	subs := make([]local.Subscriber, len(cfg.Subscribers))
	for i, s := range cfg.Subscribers {
		subs[i] = local.Subscriber{
			Name:     s.Name,
			Password: string(s.Password),
			Address:  s.Address,
			Pool:     s.Pool,
			Disabled: s.Disabled,
		}
	}
	return subs
}

func localAuthenticator(cfg *config.Config) (*local.Authenticator, error) {
	a, err := local.New(localSubscribers(cfg))
	if err != nil {
		return nil, fmt.Errorf("subscribers: %w", err)
	}
	return a, nil
}

func poolConfigs(cfg *config.Config) []pool.Config {
	out := make([]pool.Config, len(cfg.Pools))
	for i, p := range cfg.Pools {
		rs := make([]pool.Range, len(p.Ranges))
		for j, r := range p.Ranges {
			rs[j] = pool.Range{First: r.From, Last: r.To}
			// A CIDR keeps its network and broadcast addresses out of the
			// pool (below /31), as operators expect from "10.64.0.0/24".
			if pfx, ok := r.Prefix(); ok && pfx.Bits() < 31 {
				if pr, err := pool.RangeFromPrefix(pfx); err == nil {
					rs[j] = pr
				}
			}
		}
		out[i] = pool.Config{Name: p.Name, Ranges: rs, Gateway: p.Gateway}
	}
	return out
}
