# SPDX-License-Identifier: Apache-2.0
"""The Debian packages (debian/): built once from a copy of the tree with
dpkg-buildpackage, as an operator or a build machine would; lintian clean
(each override explained); dependencies computed from the shared libraries
and installable here; installed with dpkg into a throwaway root, running
the real maintainer scripts (they honour DPKG_ROOT), which make the system
user and /etc/msce private to it; the installed unit verified by systemd;
msced from the package answers --version and runs a center that a desk
program built against libmsce-dev (shared and static) writes to; an
upgrade keeps the configs and a purge leaves only what the operator made.

Needs debhelper, lintian and dpkg-dev (deploy/install-deps) and no
network. The install into the throwaway root needs root (the maintainer
scripts chown): elsewhere that test skips, saying so."""

import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

from deployutil import REPO, free_ports, reap, spawn, wait_until

MSCE_GEN = os.path.join(REPO, "deploy", "msce-gen")
PACKAGES = ("msced", "msce", "libmsce1", "libmsce-dev")
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb", "apt-get", "cc",
         "pkg-config", "systemd-sysusers", "systemd-tmpfiles")


def run(argv, timeout=900, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\n%s\n%s" % (
            " ".join(argv), r.returncode, r.stdout[-6000:], r.stderr[-6000:]))
    return r


def project_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        m = re.search(r"project\(msce VERSION (\d+\.\d+\.\d+)", f.read())
    return m.group(1)


def copy_tree(dst):
    """The source tree without builds, clusters, git or bytecode."""
    skip_top = re.compile(r"^(build.*|run|obj-.*|\.git)$")

    def ignore(d, names):
        top = os.path.abspath(d) == os.path.abspath(REPO)
        return [n for n in names
                if (top and skip_top.match(n)) or n == "__pycache__" or n.endswith(".pyc")]
    shutil.copytree(REPO, dst, symlinks=True, ignore=ignore)


class PackagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise AssertionError("not installed: %s (deploy/install-deps installs them)"
                                 % ", ".join(missing))
        cls.version = project_version()
        cls.dir = tempfile.mkdtemp(prefix="msce-pkg-",
                                   dir=os.environ.get("MSCE_TEST_TMP", "/tmp"))
        src = os.path.join(cls.dir, "msce")
        copy_tree(src)
        env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % (os.cpu_count() or 2))
        env.pop("MAKEFLAGS", None)
        r = run(["dpkg-buildpackage", "-us", "-uc"], cwd=src, env=env, check=False)
        with open(os.path.join(cls.dir, "build.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise AssertionError("dpkg-buildpackage exited %d (log %s):\n%s" % (
                r.returncode, os.path.join(cls.dir, "build.log"),
                (r.stdout + r.stderr)[-6000:]))
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        cls.debs = {p: os.path.join(cls.dir, "%s_%s_%s.deb" % (p, cls.version, arch))
                    for p in PACKAGES}
        cls.changes = os.path.join(cls.dir, "msce_%s_%s.changes" % (cls.version, arch))

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("MSCE_KEEP_TMP"):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def contents(self, pkg):
        """{path: (mode string, owner, link target)} of a package."""
        out = {}
        for line in run(["dpkg-deb", "-c", self.debs[pkg]]).stdout.splitlines():
            f = line.split()
            path = f[5][1:].rstrip("/") or "/"
            out[path] = (f[0], f[1], f[7] if len(f) > 7 and f[6] == "->" else None)
        return out

    def field(self, pkg, name):
        return run(["dpkg-deb", "-f", self.debs[pkg], name]).stdout.strip()

    # -- what was built

    def test_versions_agree(self):
        # One version: project() in CMakeLists.txt; debian/changelog must
        # name the same, and so every package.
        with open(os.path.join(REPO, "debian", "changelog")) as f:
            m = re.match(r"msce \(([^)]+)\) ", f.readline())
        self.assertEqual(m.group(1), self.version, "debian/changelog vs project()")
        for p in PACKAGES:
            self.assertTrue(os.path.exists(self.debs[p]), self.debs[p])
            self.assertEqual(self.field(p, "Version"), self.version, p)

    def test_lintian_clean_overrides_explained(self):
        r = run(["lintian", "--fail-on", "error,warning", "--display-info",
                 self.changes], check=False, timeout=600)
        self.assertEqual(r.returncode, 0, "lintian:\n" + r.stdout + r.stderr)
        # Every override says why, in a comment right above it.
        for path in glob.glob(os.path.join(REPO, "debian", "*lintian-overrides")):
            with open(path) as f:
                lines = [ln.rstrip("\n") for ln in f]
            for i, ln in enumerate(lines):
                if ln.strip() and not ln.startswith("#"):
                    self.assertTrue(i > 0 and lines[i - 1].startswith("#"),
                                    "%s: override %r has no comment saying why"
                                    % (os.path.basename(path), ln))

    def test_files_and_dependencies(self):
        msced, cli = self.contents("msced"), self.contents("msce")
        lib, dev = self.contents("libmsce1"), self.contents("libmsce-dev")
        self.assertEqual(msced["/usr/sbin/msced"][0], "-rwxr-xr-x")
        self.assertEqual(msced["/lib/systemd/system/msced@.service"][0], "-rw-r--r--")
        for p in ("/usr/lib/sysusers.d/msced.conf", "/usr/lib/tmpfiles.d/msced.conf",
                  "/usr/share/doc/msced/README.md.gz", "/usr/share/doc/msced/NEWS.md.gz"):
            self.assertIn(p, msced)
        self.assertEqual(cli["/usr/bin/msce"][0], "-rwxr-xr-x")
        # Each program's man pages and completion go with it.
        self.assertIn("/usr/share/man/man1/msce.1.gz", cli)
        self.assertIn("/usr/share/bash-completion/completions/msce", cli)
        self.assertIn("/usr/share/man/man8/msced.8.gz", msced)
        self.assertIn("/usr/share/man/man5/msced.conf.5.gz", msced)
        multiarch = [p for p in lib if p.endswith("/libmsce.so.1")]
        self.assertEqual(len(multiarch), 1, sorted(lib))
        libdir = os.path.dirname(multiarch[0])
        # The file is SOVERSION.MINOR.PATCH (client/CMakeLists.txt).
        self.assertEqual(lib[libdir + "/libmsce.so.1"][2],
                         "libmsce.so.1." + self.version.split(".", 1)[1])
        self.assertEqual(dev[libdir + "/libmsce.so"][2], "libmsce.so.1")
        for p in (libdir + "/libmsce.a", libdir + "/pkgconfig/msce.pc",
                  "/usr/include/msce.h", "/usr/include/msce/msce.h",
                  "/usr/include/msce/msce_errors.h",
                  "/usr/include/msce/msce_limits.h",
                  "/usr/include/msce/msce_domain.h",
                  "/usr/include/msce/msce_version.h"):
            self.assertIn(p, dev)
        for p in PACKAGES:
            files = self.contents(p)
            self.assertIn("/usr/share/doc/%s/copyright" % p, files)
            self.assertIn("/usr/share/doc/%s/NOTICE" % p, files)  # Apache-2.0 (d)
            self.assertFalse([f for f in files if f.startswith("/etc/msce/")], p)
        # ${shlibs:Depends}: computed from what each program links.
        deps = {p: self.field(p, "Depends") for p in PACKAGES}
        for lib_pkg in ("libuv1", "liblmdb0", "libsodium23", "libprotobuf-c1", "libinih1"):
            self.assertIn(lib_pkg, deps["msced"])
        self.assertIn("libcjson1", deps["msce"])
        self.assertNotIn("libuv1", deps["libmsce1"])
        self.assertIn("libmsce1 (= %s)" % self.version, deps["libmsce-dev"])
        self.assertIn("systemd", deps["msced"])  # systemd-sysusers in postinst
        # Installable on this Debian as they are (apt resolves, changes nothing).
        r = run(["apt-get", "install", "--simulate", "--no-install-recommends"]
                + [self.debs[p] for p in PACKAGES], check=False, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for p in PACKAGES:
            self.assertRegex(r.stdout, r"(?m)^Inst %s " % re.escape(p))

    # -- installed

    def test_install_into_throwaway_root(self):
        if os.geteuid() != 0:
            self.skipTest("dpkg --root with the maintainer scripts needs root (chown)")
        root = os.path.join(self.dir, "root")
        for d in ("etc", "var/lib/dpkg/info", "var/lib/dpkg/updates"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        # A base system's accounts: only root (sysusers adds to these).
        with open(os.path.join(root, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        with open(os.path.join(root, "etc/group"), "w") as f:
            f.write("root:x:0:\n")
        # The libraries come from this machine (checked installable above);
        # the maintainer scripts run here, on the root given in DPKG_ROOT.
        dpkg = ["dpkg", "--root=" + root, "--force-script-chrootless",
                "--force-depends", "--log=/dev/null"]
        run(dpkg + ["-i"] + [self.debs[p] for p in PACKAGES])
        R = lambda p: os.path.join(root, p.lstrip("/"))

        # The system user and group, made by the postinst (systemd-sysusers).
        users = {ln.split(":")[0]: ln.strip().split(":") for ln in open(R("/etc/passwd"))}
        groups = {ln.split(":")[0]: ln.strip().split(":") for ln in open(R("/etc/group"))}
        self.assertIn("msce", users)
        uid, gid = int(users["msce"][2]), int(groups["msce"][2])
        self.assertLess(uid, 1000, "a system user")
        self.assertEqual(users["msce"][5:], ["/var/lib/msce", "/usr/sbin/nologin"])

        def owner_mode(p):
            st = os.lstat(R(p))
            return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
        # Configs and keys: only root writes, only group msce reads.
        self.assertEqual(owner_mode("/etc/msce"), (0, gid, 0o750))
        self.assertEqual(owner_mode("/var/backups/msce"), (uid, gid, 0o750))
        self.assertEqual(owner_mode("/usr/sbin/msced"), (0, 0, 0o755))

        # The programs run and say the release.
        r = run([R("/usr/sbin/msced"), "--version"])
        self.assertIn("msced " + self.version, r.stdout)
        r = run([R("/usr/bin/msce"), "--version"])
        self.assertIn(self.version, r.stdout)

        # The installed unit is the one in deploy/, and systemd accepts it
        # (ExecStart pointed at the installed program: nothing is installed
        # on this machine itself).
        unit = R("/lib/systemd/system/msced@.service")
        with open(unit) as f, open(os.path.join(REPO, "deploy", "msced@.service")) as g:
            text = f.read()
            self.assertEqual(text, g.read())
        udir = os.path.join(self.dir, "units")
        os.makedirs(udir, exist_ok=True)
        for name in ("msced@.service", "msced@shekou.service"):
            with open(os.path.join(udir, name), "w") as f:
                f.write(text.replace("/usr/sbin/msced", R("/usr/sbin/msced")))
            r = run(["systemd-analyze", "verify", "--man=no", os.path.join(udir, name)],
                    check=False, timeout=60)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            self.assertEqual([ln for ln in out.splitlines() if "msced@" in ln], [], out)

        # An upgrade (the same packages again) keeps what the operator put
        # in /etc/msce and its modes.
        conf = R("/etc/msce/shekou.conf")
        with open(conf, "w") as f:
            f.write("; operator's config\n")
        os.chown(conf, 0, gid)
        os.chmod(conf, 0o640)
        run(dpkg + ["-i"] + [self.debs[p] for p in PACKAGES])
        self.assertEqual(owner_mode("/etc/msce"), (0, gid, 0o750))
        self.assertEqual(owner_mode("/etc/msce/shekou.conf"), (0, gid, 0o640))

        # Purge: the packages' files go; the operator's config stays, the
        # empty backup area goes.
        run(dpkg + ["--purge"] + list(PACKAGES))
        left = [os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs
                if not os.path.relpath(d, root).startswith(("var/lib/dpkg", "etc"))]
        self.assertEqual(left, [])
        self.assertTrue(os.path.exists(conf))
        self.assertFalse(os.path.exists(R("/var/backups/msce")))

    def test_desk_builds_against_dev_package_and_writes_to_packaged_msced(self):
        # libmsce-dev unpacked (no scripts needed), used through pkg-config
        # as a front end would; msced and msce from their packages.
        root = os.path.join(self.dir, "x")
        for p in PACKAGES:
            run(["dpkg-deb", "-x", self.debs[p], root])
        pc = glob.glob(os.path.join(root, "usr/lib/*/pkgconfig/msce.pc"))
        self.assertEqual(len(pc), 1)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc[0]))
        libdir = os.path.dirname(os.path.dirname(pc[0]))
        desk_c = os.path.join(root, "usr/share/doc/libmsce-dev/examples/desk.c")
        exes = {}
        for kind, extra in (("shared", []), ("static", ["--static"])):
            flags = run(["pkg-config", "--cflags", "--libs"] + extra + ["msce"],
                        env=env).stdout.split()
            exe = os.path.join(self.dir, "desk-" + kind)
            if kind == "static":  # libmsce.a, the system's libraries shared
                flags = [f for f in flags if f != "-lmsce"]
                flags = [os.path.join(libdir, "libmsce.a")] + flags
            run(["cc", "-o", exe, desk_c] + flags)
            exes[kind] = exe
        needed = run(["readelf", "-d", exes["static"]]).stdout
        self.assertNotIn("libmsce.so", needed)

        # One center, generated by msce-gen with the packaged CLI.
        work = os.path.join(self.dir, "center")
        os.makedirs(work, exist_ok=True)
        (port,) = free_ports(1)
        with open(os.path.join(work, "centers"), "w") as f:
            f.write("shekou 1 127.0.0.1:%d\n" % port)
        msce = os.path.join(root, "usr/bin/msce")
        run([sys.executable, MSCE_GEN, "--msce", msce, "--layout", "local",
             os.path.join(work, "centers"), os.path.join(work, "out")])
        conf = os.path.join(work, "out/shekou/shekou.conf")
        sock = os.path.join(work, "out/shekou/shekou.sock")
        log = open(os.path.join(work, "msced.log"), "wb")
        self.addCleanup(log.close)
        proc = spawn([os.path.join(root, "usr/sbin/msced"), "-c", conf],
                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(reap, proc, 5)
        wait_until(lambda: run([msce, "-c", conf, "status"], check=False).returncode == 0,
                   20, "the packaged msced to answer")
        for kind, exe in exes.items():
            doc = "PKG%s" % kind.upper()
            r = run([exe, sock, doc], env=dict(
                os.environ, LD_LIBRARY_PATH=libdir if kind == "shared" else ""))
            self.assertIn("libmsce %s (built with %s)" % (self.version, self.version),
                          r.stdout)
            self.assertIn("registered FRA:" + doc, r.stdout)
            r = run([msce, "-c", conf, "get", "registration", "FRA:" + doc])
            self.assertIn("Amelie Laurent", r.stdout)
        self.assertEqual(reap(proc, 15), 0)


if __name__ == "__main__":
    unittest.main()
