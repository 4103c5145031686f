package lab

import (
	"bufio"
	"fmt"
	"path"
	"strings"
)

// moduleName normalises a module name or path the way kmod does:
// "kernel/net/9p/9pnet_virtio.ko" and "9pnet-virtio" both give "9pnet_virtio".
func moduleName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// moduleDeps is a parsed modules.dep: module name -> its file (relative to
// /lib/modules/<version>) and the names of the modules it needs.
type moduleDeps struct {
	file map[string]string
	deps map[string][]string
}

// parseModulesDep parses depmod's modules.dep ("path.ko: dep.ko dep.ko").
func parseModulesDep(text string) (moduleDeps, error) {
	md := moduleDeps{file: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		mod, rest, ok := strings.Cut(l, ":")
		if !ok || mod == "" {
			return moduleDeps{}, fmt.Errorf("modules.dep line %d: no colon in %q", line, l)
		}
		name := moduleName(mod)
		md.file[name] = mod
		for _, d := range strings.Fields(rest) {
			md.deps[name] = append(md.deps[name], moduleName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return moduleDeps{}, fmt.Errorf("modules.dep: %w", err)
	}
	return md, nil
}

// parseModulesBuiltin returns the set of built-in module names.
func parseModulesBuiltin(text string) map[string]bool {
	b := map[string]bool{}
	for _, l := range strings.Fields(text) {
		b[moduleName(l)] = true
	}
	return b
}

// loadOrder returns the module files to insmod, in order, so that the named
// modules and everything they depend on load; built-in modules are skipped.
func (md moduleDeps) loadOrder(builtin map[string]bool, names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, from string) error
	visit = func(n, from string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s (needed by %s)", n, from)
		case 2:
			return nil
		}
		f, ok := md.file[n]
		if !ok {
			if builtin[n] {
				state[n] = 2
				return nil
			}
			if from == "" {
				return fmt.Errorf("module %s: not in modules.dep and not built in", n)
			}
			return fmt.Errorf("module %s (needed by %s): not in modules.dep and not built in", n, from)
		}
		state[n] = 1
		deps := md.deps[n]
		// modules.dep lists the deepest dependencies last; load those first.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], n); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, f)
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n), ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}
