package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr kills the server if the test binary dies without cleaning up.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
