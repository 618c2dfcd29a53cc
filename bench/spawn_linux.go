package bench

import (
	"os/exec"
	"syscall"
)

// detach puts a worker in its own process group (a Ctrl-C in the terminal
// reaches the coordinator only, which then stops its workers in order) and
// has the kernel kill it if the coordinator dies.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
