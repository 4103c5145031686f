package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// bootModules are the modules the initramfs needs to mount the host's root
// over virtio 9p with an overlay on top.
var bootModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay"}

// recipeVersion changes whenever the initramfs layout changes in a way the
// script texts do not show.
const recipeVersion = "1"

// busyboxPath is Debian busybox-static's binary.
const busyboxPath = "/bin/busybox"

// initramfsKey names a cached initramfs: kernel version plus a hash of
// everything that goes into it.
func initramfsKey(kver string, bb os.FileInfo) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00",
		recipeVersion, initScript, stage2Script, strings.Join(bootModules, ","),
		kver, bb.Size(), bb.ModTime().UnixNano())
	return kver + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// Initramfs returns the path of the lab's initramfs for kernel version kver,
// building it into the cache directory if it is not there yet. Concurrent
// callers (several test binaries) are safe: the file is written under a
// temporary name and renamed.
func Initramfs(kver string) (string, error) {
	bb, err := os.Stat(busyboxPath)
	if err != nil {
		return "", fmt.Errorf("lab initramfs: busybox-static: %w", err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "initramfs-"+initramfsKey(kver, bb)+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp, err := os.CreateTemp(cache, ".initramfs-*")
	if err != nil {
		return "", fmt.Errorf("lab initramfs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeInitramfs(tmp, kver); err != nil {
		tmp.Close()
		return "", fmt.Errorf("lab initramfs for kernel %s: %w", kver, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("lab initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("lab initramfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("lab initramfs: %w", err)
	}
	return out, nil
}

func writeInitramfs(f *os.File, kver string) error {
	modRoot := filepath.Join("/lib/modules", kver)
	dep, err := os.ReadFile(filepath.Join(modRoot, "modules.dep"))
	if err != nil {
		return fmt.Errorf("read modules.dep: %w", err)
	}
	md, err := parseModulesDep(string(dep))
	if err != nil {
		return err
	}
	builtinText, err := os.ReadFile(filepath.Join(modRoot, "modules.builtin"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read modules.builtin: %w", err)
	}
	order, err := md.loadOrder(parseModulesBuiltin(string(builtinText)), bootModules)
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}

	w := newCpioWriter(f)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parts []string
		for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if dirs[parts[i]] {
				continue
			}
			dirs[parts[i]] = true
			if err := w.Add(cpioEntry{Name: parts[i], Mode: modeDir | 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	add := func(e cpioEntry) error {
		if err := mkdirs(e.Name); err != nil {
			return err
		}
		if e.Mode&0o170000 == modeDir {
			dirs[e.Name] = true
		}
		return w.Add(e)
	}
	for _, d := range []string{"proc", "sys", "dev", "bin", "tmp"} {
		if err := add(cpioEntry{Name: d, Mode: modeDir | 0o755}); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init before anything is mounted.
	if err := add(cpioEntry{Name: "dev/console", Mode: modeCharDev | 0o600, Major: 5, Minor: 1}); err != nil {
		return err
	}
	if err := add(cpioEntry{Name: "bin/busybox", Mode: modeRegular | 0o755, Data: bb}); err != nil {
		return err
	}
	if err := add(cpioEntry{Name: "bin/sh", Mode: modeSymlink | 0o777, Data: []byte("busybox")}); err != nil {
		return err
	}
	if err := add(cpioEntry{Name: "init", Mode: modeRegular | 0o755, Data: []byte(initScript)}); err != nil {
		return err
	}
	if err := add(cpioEntry{Name: "stage2", Mode: modeRegular | 0o755, Data: []byte(stage2Script)}); err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(modRoot, m))
		if err != nil {
			return fmt.Errorf("read module: %w", err)
		}
		if err := add(cpioEntry{Name: filepath.Join("lib/modules", m), Mode: modeRegular | 0o644, Data: data}); err != nil {
			return err
		}
		list.WriteString(m + "\n")
	}
	if err := add(cpioEntry{Name: "modules.order", Mode: modeRegular | 0o644, Data: []byte(list.String())}); err != nil {
		return err
	}
	return w.Close()
}
