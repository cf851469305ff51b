// Command auditgen appends server_audit lines shaped like a sysbench
// oltp_point_select run (eight sessions, CONNECT,QUERY logged) to a file at
// a steady rate, for bench/follow.sh: das following it then does the work
// of following a busy server, with no database competing for the CPU.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	path := flag.String("file", "", "server_audit log to append to (created if missing)")
	rate := flag.Int("rate", 32000, "lines per second")
	dur := flag.Duration("duration", 20*time.Second, "how long to write")
	flag.Parse()
	if *path == "" || *rate < 1000 {
		fmt.Fprintln(os.Stderr, "auditgen: -file is required and -rate at least 1000")
		os.Exit(2)
	}
	f, err := os.OpenFile(*path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditgen:", err)
		os.Exit(1)
	}
	defer f.Close()
	// One write per millisecond, as a server flushing its log often does.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	n := 0
	var buf []byte
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= *dur {
			break
		}
		// Catch up to the rate for the time elapsed: ticks can be late.
		want := int(elapsed.Seconds() * float64(*rate))
		buf = buf[:0]
		stamp := now.UTC().Format("20060102 15:04:05")
		for ; n < want; n++ {
			buf = fmt.Appendf(buf, "%s,db-1,sbtest,localhost,%d,%d,QUERY,sbtest,'SELECT c FROM sbtest%d WHERE id=%d',0\n",
				stamp, 10+n%8, n+1, 1+n%4, n%10000)
		}
		if _, err := f.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, "auditgen:", err)
			os.Exit(1)
		}
	}
	fmt.Println(n)
}
