// bench:exec's floor: the least a process events listener can do on this host, the design the issue
// measured (one socket, a blocking recv per message, /proc/PID/cmdline read at each exec). It runs
// beside the agents through the same bursts; on SIGTERM it prints its counts and CPU time as JSON.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;
static void on_term(int sig) { (void)sig; stopping = 1; }

int main(void) {
  int sock = socket(PF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
  int size = 8 << 20;
  setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
  if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("exec-floor: bind"); return 1; }
  char msg[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(int))] __attribute__((aligned(8)));
  memset(msg, 0, sizeof msg);
  struct nlmsghdr *nl = (struct nlmsghdr *)msg;
  struct cn_msg *cn = NLMSG_DATA(nl);
  nl->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(int));
  nl->nlmsg_type = NLMSG_DONE;
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->len = sizeof(int);
  *(int *)cn->data = PROC_CN_MCAST_LISTEN;
  if (send(sock, msg, nl->nlmsg_len, 0) < 0) { perror("exec-floor: listen"); return 1; }
  struct sigaction sa = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa, NULL);
  struct rusage before;
  getrusage(RUSAGE_SELF, &before);
  fprintf(stdout, "ready\n");
  fflush(stdout);
  long execs = 0, withCmdline = 0;
  char buf[8192] __attribute__((aligned(8)));
  char cmdline[4096];
  while (!stopping) {
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    if (n <= 0) continue;
    struct cn_msg *in = NLMSG_DATA((struct nlmsghdr *)buf);
    struct proc_event *ev = (struct proc_event *)in->data;
    if (ev->what != PROC_EVENT_EXEC) continue;
    execs++;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", ev->event_data.exec.process_tgid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (read(fd, cmdline, sizeof cmdline) > 0) withCmdline++;
    close(fd);
  }
  struct rusage after;
  getrusage(RUSAGE_SELF, &after);
  double ms = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec + after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1e3
    + (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec + after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e3;
  fprintf(stdout, "{\"execs\":%ld,\"withCommandLine\":%ld,\"cpuMs\":%.1f}\n", execs, withCmdline, ms);
  return 0;
}
