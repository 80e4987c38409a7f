// The C header used from C++17: a small RAII wrapper over a handoff engine.
//   handoff --self-test   create, start, connect once, take the connection, shut down
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "corral.h"

namespace {

std::string message(corral_status s) {
    char buf[256];
    corral_status_message(s, buf, sizeof buf, nullptr);
    return buf;
}

void check(corral_status s, const char *what) {
    if (s != CORRAL_STATUS_OK) throw std::runtime_error(std::string(what) + ": " + message(s));
}

class Engine {
  public:
    Engine() {
        std::unique_ptr<corral_config, decltype(&corral_config_free)> cfg(corral_config_new(), corral_config_free);
        check(corral_config_add_address(cfg.get(), "127.0.0.1:0"), "address");
        corral_engine *e = nullptr;
        check(corral_engine_new_handoff(cfg.get(), &e), "engine");
        engine_.reset(e);
        check(corral_engine_start(engine_.get()), "start");
    }
    uint16_t port() const {
        corral_peer p{};
        check(corral_engine_local_addr(engine_.get(), 0, &p), "local_addr");
        return p.port;
    }
    int notify_fd() const {
        int32_t fd = -1;
        check(corral_engine_notify_fd(engine_.get(), &fd), "notify_fd");
        return fd;
    }
    std::vector<corral_accepted> take(size_t max) {
        std::vector<corral_accepted> out(max);
        size_t n = 0;
        check(corral_engine_take(engine_.get(), out.data(), out.size(), &n), "take");
        out.resize(n);
        return out;
    }
    corral_shutdown_report shutdown() {
        corral_shutdown_report r{};
        check(corral_engine_shutdown(engine_.get(), 1000, &r), "shutdown");
        return r;
    }

  private:
    std::unique_ptr<corral_engine, decltype(&corral_engine_free)> engine_{nullptr, corral_engine_free};
};

}  // namespace

int main() {
    try {
        Engine engine;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(engine.port());
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) throw std::runtime_error("connect");
        pollfd p{engine.notify_fd(), POLLIN, 0};
        if (poll(&p, 1, 30000) != 1) throw std::runtime_error("no connection was queued");
        auto got = engine.take(8);
        bool ok = got.size() == 1 && got[0].peer.family == 4;
        for (auto &c : got) close(c.fd);
        close(client);
        auto report = engine.shutdown();
        std::printf("handoff (C++): %s, version %s, %llu unclaimed\n", ok ? "ok" : "FAILED", corral_version(),
                    static_cast<unsigned long long>(report.handoff_unclaimed));
        std::printf("handoff (C++): %d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
        return ok ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "handoff (C++): %s\n", e.what());
        return 1;
    }
}
