package main

import (
	"fmt"

	"github.com/l2tpd/l2tpd/migrate"
)

// importConfig prints an l2tpd.toml equivalent to an xl2tpd or accel-ppp
// configuration; what could not be carried over is in its comments.
func (c *cmd) importConfig(args []string) error {
	if len(args) < 2 {
		return usagef("import xl2tpd XL2TPD.CONF [PPP-OPTIONS [CHAP-SECRETS]] or import accel-ppp ACCEL-PPP.CONF")
	}
	read := func(name string) (migrate.Source, error) {
		b, err := c.readFile(name)
		if err != nil {
			return migrate.Source{}, fmt.Errorf("import %s: %w", args[0], err)
		}
		return migrate.Source{Name: name, Data: b}, nil
	}
	var out string
	switch args[0] {
	case "xl2tpd":
		if len(args) > 4 {
			return usagef("import xl2tpd takes at most three files: xl2tpd.conf, a pppd options file, chap-secrets")
		}
		conf, err := read(args[1])
		if err != nil {
			return err
		}
		o := migrate.XL2TPDOptions{ReadFile: c.readFile}
		if len(args) > 2 {
			s, err := read(args[2])
			if err != nil {
				return err
			}
			o.PPPOptions = &s
		}
		if len(args) > 3 {
			s, err := read(args[3])
			if err != nil {
				return err
			}
			o.CHAPSecrets = &s
		}
		out, err = migrate.XL2TPD(conf, o)
		if err != nil {
			return fmt.Errorf("import xl2tpd: %w", err)
		}
	case "accel-ppp":
		if len(args) != 2 {
			return usagef("import accel-ppp takes one file: accel-ppp.conf")
		}
		conf, err := read(args[1])
		if err != nil {
			return err
		}
		out, err = migrate.AccelPPP(conf, migrate.AccelPPPOptions{ReadFile: c.readFile})
		if err != nil {
			return fmt.Errorf("import accel-ppp: %w", err)
		}
	default:
		return usagef("import %q: want xl2tpd or accel-ppp", args[0])
	}
	fmt.Fprint(c.stdout, out)
	return nil
}
