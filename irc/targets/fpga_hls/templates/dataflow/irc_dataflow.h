// irc dataflow library: the stages of a whole-network DATAFLOW design, written once as templates.
//
// A generated top (kernels/<model>_top.cpp) joins one stage per layer with FIFOs of pixels
// (irc::pack<T, C>: the C channels of one position, in raster order). Each stage is one
// pipelined loop (II=1) over a flat iteration count whose terms are the cycles the model
// counts (dataflow/model.py): the trip counts appear as the constants of the stage's
// configuration struct. A stage's configuration C also gives its arithmetic (types, products,
// the epilogue), so the same loop serves float, ap_fixed and int8 (irc/ir/quant_arith.py's
// integer arithmetic, as irc_hls.h implements it).
//
// FIFOs: under synthesis an irc::fifo is an hls::stream whose depth the top's STREAM pragma
// sets. In C simulation every stage runs in its own thread and a FIFO holds at most its depth:
// a write to a full FIFO or a read from an empty one waits, as on the device. When every live
// stage waits and nothing moves, the design has deadlocked (a FIFO too shallow, or a stage
// reading more than its producer writes); the run stops and irc::dataflow_status() says which
// FIFO it was. After the run, a FIFO still holding data is reported too.
#ifndef IRC_DATAFLOW_H
#define IRC_DATAFLOW_H

#include "irc_hls.h"

#ifndef __SYNTHESIS__
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#endif

namespace irc {

#ifdef __SYNTHESIS__
template <class T>
class fifo : public hls::stream<T> {
   public:
    fifo(const char* name, int) : hls::stream<T>(name) {}
};
#define IRC_DATAFLOW_BEGIN
#define IRC_STAGE(call) call
#define IRC_DATAFLOW_END
#else

// What the C simulation of a DATAFLOW region found: deadlock, data left behind, peak fill levels.
struct dataflow_state {
    std::mutex m;
    std::condition_variable cv;
    int alive = 0;
    int waiting = 0;
    long progress = 0;
    bool deadlock = false;
    bool ok = true;
    int schedule_errors = 0;
    std::string error;
    std::string report;
    std::vector<std::string> waits;  // what each waiting stage waits for
    std::vector<std::function<std::string()> > checks;
    std::vector<std::thread> threads;
};

inline dataflow_state& dataflow() {
    static dataflow_state s;
    return s;
}

struct deadlocked {};

// A bounded FIFO shared by two stage threads; the depth is the one the top declares.
template <class T>
class fifo {
   public:
    fifo(const char* name, int depth) : name_(name), depth_(depth > 0 ? depth : 1) {
        dataflow_state& d = dataflow();
        std::lock_guard<std::mutex> l(d.m);
        d.checks.push_back([this] { return check(); });
    }
    void write(const T& v) {
        dataflow_state& d = dataflow();
        std::unique_lock<std::mutex> l(d.m);
        wait(d, l, [this] { return int(q_.size()) < depth_; }, "a write to the full FIFO ");
        q_.push_back(v);
        if (int(q_.size()) > peak_) peak_ = int(q_.size());
        writes_++;
        d.progress++;
        d.cv.notify_all();
    }
    T read() {
        dataflow_state& d = dataflow();
        std::unique_lock<std::mutex> l(d.m);
        wait(d, l, [this] { return !q_.empty(); }, "a read from the empty FIFO ");
        T v = q_.front();
        q_.pop_front();
        d.progress++;
        d.cv.notify_all();
        return v;
    }
    bool empty() {
        std::lock_guard<std::mutex> l(dataflow().m);
        return q_.empty();
    }

   private:
    template <class Ready>
    void wait(dataflow_state& d, std::unique_lock<std::mutex>& l, Ready ready, const char* what) {
        while (!ready()) {
            if (d.deadlock) throw deadlocked();
            const std::string mine = std::string(what) + name_ + " (depth " + std::to_string(depth_) + ")";
            d.waiting++;
            d.waits.push_back(mine);
            const long seen = d.progress;
            d.cv.wait_for(l, std::chrono::milliseconds(200));
            d.waiting--;
            for (size_t i = 0; i < d.waits.size(); i++) {
                if (d.waits[i] == mine) {
                    d.waits.erase(d.waits.begin() + long(i));
                    break;
                }
            }
            // every live stage waits and nothing moved while this one slept: no stage can go on
            if (!ready() && d.progress == seen && d.waiting + 1 >= d.alive && !d.deadlock) {
                d.deadlock = true;
                d.error = "deadlock: every stage waits: " + mine;
                for (const std::string& w : d.waits) d.error += "; " + w;
                d.cv.notify_all();
            }
        }
    }
    std::string check() {
        std::string s = std::string(name_) + " depth " + std::to_string(depth_) + " peak " + std::to_string(peak_) +
                        " writes " + std::to_string(writes_);
        if (!q_.empty()) s += " LEFT " + std::to_string(q_.size());
        return s;
    }
    const char* name_;
    int depth_;
    int peak_ = 0;
    long writes_ = 0;
    std::deque<T> q_;
};

inline void dataflow_begin() {
    dataflow_state& d = dataflow();
    std::lock_guard<std::mutex> l(d.m);
    d.alive = 0;
    d.waiting = 0;
    d.deadlock = false;
    d.waits.clear();
    d.schedule_errors = 0;
    d.error.clear();
    d.report.clear();
}

inline void dataflow_stage(std::function<void()> body) {
    dataflow_state& d = dataflow();
    {
        std::lock_guard<std::mutex> l(d.m);
        d.alive++;
    }
    d.threads.emplace_back([body, &d] {
        try {
            body();
        } catch (const deadlocked&) {
        }
        std::lock_guard<std::mutex> l(d.m);
        d.alive--;
        d.progress++;
        d.cv.notify_all();
    });
}

// Joins the stages; true when the run neither deadlocked nor left data in a FIFO.
inline bool dataflow_end() {
    dataflow_state& d = dataflow();
    for (std::thread& t : d.threads) t.join();
    d.threads.clear();
    std::lock_guard<std::mutex> l(d.m);
    bool ok = !d.deadlock && d.schedule_errors == 0;
    if (d.schedule_errors) d.report += "schedule: " + std::to_string(d.schedule_errors) + " stage frames whose loop did not end with their last step\n";
    for (auto& c : d.checks) {
        const std::string s = c();
        if (s.find(" LEFT ") != std::string::npos) ok = false;
        d.report += s + "\n";
    }
    d.checks.clear();
    if (!d.error.empty()) d.report += d.error + "\n";
    d.ok = ok;
    return ok;
}

// A stage whose loop did not end exactly when its frame did (a trip-count constant that does
// not match the schedule it iterates over) fails the run.
inline void schedule_check(bool ok) {
    if (ok) return;
    dataflow_state& d = dataflow();
    std::lock_guard<std::mutex> l(d.m);
    d.schedule_errors++;
}

#define IRC_DATAFLOW_BEGIN irc::dataflow_begin();
#define IRC_STAGE(call) irc::dataflow_stage([&] { call; });
#define IRC_DATAFLOW_END irc::dataflow_end();
#endif

// Rotating partial sums (irc_hls.h's scheme): ``term`` joins the sum begun SPLIT iterations ago.
template <class Q>
void add_term(typename Q::acc_t (&r)[Q::SPLIT], typename Q::acc_t term) {
#pragma HLS INLINE
    typename Q::acc_t next = Q::add(r[Q::SPLIT - 1], term);
    for (int s = Q::SPLIT - 1; s > 0; s--) {
#pragma HLS UNROLL
        r[s] = r[s - 1];
    }
    r[0] = next;
}

// ------------------------------------------------------------------------------- memory <-> stream
// A graph input: frames x PIX pixels of C values, pixel-major, BEATS cycles a pixel (the port's
// width in elements per beat, after Vitis widens the sequential m_axi burst to 512 bits).
template <class C>
void read_stage(const typename C::mem_t* x, fifo<pack<typename C::out_t, C::C> >& out, int frames) {
read:
    for (int i = 0; i < frames * C::PIX; i++) {
#pragma HLS PIPELINE II=C::BEATS
        pack<typename C::out_t, C::C> px;
        for (int c = 0; c < C::C; c++) {
#pragma HLS UNROLL
            px.v[c] = C::load(x[i * C::C + c]);
        }
        out.write(px);
    }
}

template <class C>
void write_stage(fifo<pack<typename C::in_t, C::C> >& in, typename C::mem_t* y, int frames) {
write:
    for (int i = 0; i < frames * C::PIX; i++) {
#pragma HLS PIPELINE II=C::BEATS
        const pack<typename C::in_t, C::C> px = in.read();
        for (int c = 0; c < C::C; c++) {
#pragma HLS UNROLL
            y[i * C::C + c] = C::store(px.v[c]);
        }
    }
}

// A stream copied to every consumer (the branches of a residual block).
template <int PIX, class T, class... Outs>
void fork_stage(fifo<T>& in, int frames, Outs&... outs) {
fork:
    for (int i = 0; i < frames * PIX; i++) {
#pragma HLS PIPELINE II=1
        const T px = in.read();
        (outs.write(px), ...);
    }
}

// ------------------------------------------------------------------------------- sliding window
// KH-1 line buffers of WP pixels and a KH x KW window of registers: each padded position shifts
// one pixel in (from the stream inside the image, C::pad() outside it), and the window is the
// KH x KW neighbourhood ending at that position. Never more than KH-1 rows of the image on chip.
template <class C, class T, int CH>
struct window {
    pack<T, CH> lb[C::KH > 1 ? C::KH - 1 : 1][C::WP];
    pack<T, CH> win[C::KH * C::KW];
    // the window slides one column right; px enters at its bottom-right corner
    void shift(const pack<T, CH>& px, int pw) {
#pragma HLS INLINE
        for (int kh = 0; kh < C::KH; kh++) {
#pragma HLS UNROLL
            for (int kw = 0; kw + 1 < C::KW; kw++) {
#pragma HLS UNROLL
                win[kh * C::KW + kw] = win[kh * C::KW + kw + 1];
            }
            win[kh * C::KW + C::KW - 1] = kh + 1 < C::KH ? lb[kh][pw] : px;
        }
        for (int kh = 0; kh + 2 < C::KH; kh++) {
#pragma HLS UNROLL
            lb[kh][pw] = lb[kh + 1][pw];
        }
        if (C::KH > 1) lb[C::KH > 1 ? C::KH - 2 : 0][pw] = px;
    }
};

// Is the padded position (ph, pw) the bottom-right corner of an output's window?
template <class C>
bool window_ends(int ph, int pw) {
#pragma HLS INLINE
    const int r = ph - (C::KH - 1), c = pw - (C::KW - 1);
    return r >= 0 && c >= 0 && r % C::SH == 0 && c % C::SW == 0 && r / C::SH < C::OH && c / C::SW < C::OW;
}

// A sliding-window stage's walk, one loop of C::TICKS iterations a frame. Each iteration
// - does one compute step (``step``: NF*SF of them an output) on the window handed over last,
// - shifts the next padded position in, unless the window is complete and still waiting (or,
//   without OVERLAP, while a window is being computed),
// - hands a complete window over once the steps of the previous one are done: with OVERLAP a
//   register copy, so the walk goes on while an output is computed; without, the window itself
//   (no copy: fewer registers, the walk waits). TICKS is the exact length of that schedule
// (dataflow/model.py computes it); C simulation checks that the last iteration is the one that
// finishes the frame, so the constant and the schedule cannot drift apart.
template <class C, class T, int CH, class Step>
void walk(fifo<pack<T, CH> >& in, window<C, T, CH>& wd, pack<T, CH> (&wc)[C::OVERLAP ? C::KH * C::KW : 1], int steps,
          Step step) {
#pragma HLS INLINE
    int ph = 0, pw = 0, k = 0, last = -1, outputs = 0;
    bool full = false, busy = false;
ticks:
    for (int t = 0; t < C::TICKS; t++) {
#pragma HLS PIPELINE II=1
        if (busy) {
            last = t;
            if (step(k)) outputs++;
            if (++k == steps) busy = false;
        }
        if (!full && ph < C::HP && (C::OVERLAP || !busy)) {
            pack<T, CH> px;
            const bool inside = ph >= C::PT && ph < C::PT + C::H && pw >= C::PL && pw < C::PL + C::W;
            if (inside) px = in.read();
            else
                for (int c = 0; c < CH; c++) {
#pragma HLS UNROLL
                    px.v[c] = C::pad();
                }
            wd.shift(px, pw);
            full = window_ends<C>(ph, pw);
            last = t;
            if (++pw == C::WP) {
                pw = 0;
                ph++;
            }
        }
        if (full && !busy) {
            if constexpr (C::OVERLAP != 0)
                for (int i = 0; i < C::KH * C::KW; i++) {
#pragma HLS UNROLL
                    wc[i] = wd.win[i];
                }
            full = false;
            busy = true;
            k = 0;
        }
    }
#ifndef __SYNTHESIS__
    schedule_check(last == C::TICKS - 1 && outputs == C::OH * C::OW && ph == C::HP && !busy);
#endif
}

// ------------------------------------------------------------------------------- convolution
// Where a window ends: NF*SF MAC steps of PE output channels x SIMD taps (the weights ROM w is
// partitioned [NF][SF][PE][SIMD] on its last two dimensions, so a step reads PE x SIMD weights).
// A tap i of a dense convolution is (kh, kw, ci) = window pixel i / CI, channel i % CI; of a
// depthwise one, window pixel i of the output channel itself. Accumulators never saturate; the
// output saturates once, in C::finish. HAS_RES: a residual pixel (the fused add) is read with
// each output pixel and added to the accumulator before the epilogue.
template <class C, class R>
void conv_core(fifo<pack<typename C::in_t, C::CI> >& in, R& res, fifo<pack<typename C::out_t, C::CO> >& out,
               const typename C::wraw_t w[C::NF][C::SF][C::PE][C::SIMD], const typename C::braw_t b[C::CO],
               const int32_t m[C::QN], const int32_t s[C::QN], int frames) {
    typedef typename C::acc_t acc_t;
    window<C, typename C::in_t, C::CI> wd;
#pragma HLS ARRAY_PARTITION variable=wd.win complete dim=0
#pragma HLS ARRAY_PARTITION variable=wd.lb complete dim=1
    pack<typename C::in_t, C::CI> wc[C::OVERLAP ? C::KH * C::KW : 1];
#pragma HLS ARRAY_PARTITION variable=wc complete dim=0
    acc_t acc[C::PE][C::SPLIT] = {};
#pragma HLS ARRAY_PARTITION variable=acc complete dim=0
    pack<typename C::out_t, C::CO> ob;
    pack<typename C::res_t, C::CO> rp;
    (void)rp;
frame:
    for (int f = 0; f < frames; f++) {
        walk<C>(in, wd, wc, C::NF * C::SF, [&](int k) {
            const int nf = k / C::SF, sf = k % C::SF;
            if constexpr (C::HAS_RES) {
                if (k == 0) rp = res.read();
            }
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                acc_t term = 0;
                for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
                    const int i = sf * C::SIMD + j;
                    const pack<typename C::in_t, C::CI>* win = C::OVERLAP ? wc : wd.win;
                    const typename C::in_t x = C::DEPTHWISE ? win[i].v[nf * C::PE + p] : win[i / C::CI].v[i % C::CI];
                    term = C::add(term, C::product(x, C::wload(w[nf][sf][p][j])));
                }
                if (sf == 0) start_sums<C>(acc[p], C::start(b[nf * C::PE + p]));
                add_term<C>(acc[p], term);
                if (sf == C::SF - 1) {
                    const int co = nf * C::PE + p;
                    acc_t v = tree_sum<C, C::SPLIT>::of(acc[p]);
                    if constexpr (C::HAS_RES) v = C::residual(v, rp.v[co]);
                    ob.v[co] = C::finish(v, m[C::QN > 1 ? co : 0], s[C::QN > 1 ? co : 0]);
                }
            }
            if (k == C::NF * C::SF - 1) {
                out.write(ob);
                return true;
            }
            return false;
        });
    }
}

template <class C>
void conv_stage(fifo<pack<typename C::in_t, C::CI> >& in, fifo<pack<typename C::out_t, C::CO> >& out,
                const typename C::wraw_t w[C::NF][C::SF][C::PE][C::SIMD], const typename C::braw_t b[C::CO],
                const int32_t m[C::QN], const int32_t s[C::QN], int frames) {
    static_assert(!C::HAS_RES, "a convolution with a residual input takes its stream");
    conv_core<C>(in, in, out, w, b, m, s, frames);
}

template <class C>
void conv_stage(fifo<pack<typename C::in_t, C::CI> >& in, fifo<pack<typename C::res_t, C::CO> >& res,
                fifo<pack<typename C::out_t, C::CO> >& out, const typename C::wraw_t w[C::NF][C::SF][C::PE][C::SIMD],
                const typename C::braw_t b[C::CO], const int32_t m[C::QN], const int32_t s[C::QN], int frames) {
    conv_core<C>(in, res, out, w, b, m, s, frames);
}

// ------------------------------------------------------------------------------- max pooling
// Where a window ends: NF steps of PE channels, each the maximum of its KH*KW taps (pads are
// C::pad(), the lowest value, which never wins).
template <class C>
void pool_stage(fifo<pack<typename C::in_t, C::CI> >& in, fifo<pack<typename C::in_t, C::CI> >& out, int frames) {
    window<C, typename C::in_t, C::CI> wd;
#pragma HLS ARRAY_PARTITION variable=wd.win complete dim=0
#pragma HLS ARRAY_PARTITION variable=wd.lb complete dim=1
    pack<typename C::in_t, C::CI> wc[C::OVERLAP ? C::KH * C::KW : 1];
#pragma HLS ARRAY_PARTITION variable=wc complete dim=0
    pack<typename C::in_t, C::CI> ob;
frame:
    for (int f = 0; f < frames; f++) {
        walk<C>(in, wd, wc, C::NF, [&](int nf) {
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                const int c = nf * C::PE + p;
                const pack<typename C::in_t, C::CI>* win = C::OVERLAP ? wc : wd.win;
                typename C::in_t best = win[0].v[c];
                for (int i = 1; i < C::KH * C::KW; i++) {
#pragma HLS UNROLL
                    best = win[i].v[c] > best ? win[i].v[c] : best;
                }
                ob.v[c] = best;
            }
            if (nf == C::NF - 1) {
                out.write(ob);
                return true;
            }
            return false;
        });
    }
}

// ------------------------------------------------------------------------------- dense
// The frame's HW pixels (a flattened feature map, or one vector) are buffered (HW iterations),
// then NF*SF MAC steps of PE outputs x SIMD inputs; the weight rows are in stream order.
template <class C>
void dense_stage(fifo<pack<typename C::in_t, C::CI> >& in, fifo<pack<typename C::out_t, C::CO> >& out,
                 const typename C::wraw_t w[C::NF][C::SF][C::PE][C::SIMD], const typename C::braw_t b[C::CO],
                 const int32_t m[C::QN], const int32_t s[C::QN], int frames) {
    typedef typename C::acc_t acc_t;
    pack<typename C::in_t, C::CI> xb[C::HW];
    acc_t acc[C::PE][C::SPLIT] = {};
#pragma HLS ARRAY_PARTITION variable=acc complete dim=0
    pack<typename C::out_t, C::CO> ob;
frame:
    for (int f = 0; f < frames; f++) {
    load:
        for (int i = 0; i < C::HW; i++) {
#pragma HLS PIPELINE II=1
            xb[i] = in.read();
        }
    macs:
        for (int t = 0; t < C::NF * C::SF; t++) {
#pragma HLS PIPELINE II=1
            const int nf = t / C::SF, sf = t % C::SF;
            const int i0 = sf * C::SIMD;
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                acc_t term = 0;
                for (int k = 0; k < C::SIMD; k++) {
#pragma HLS UNROLL
                    term = C::add(term, C::product(xb[i0 / C::CI].v[i0 % C::CI + k], C::wload(w[nf][sf][p][k])));
                }
                if (sf == 0) start_sums<C>(acc[p], C::start(b[nf * C::PE + p]));
                add_term<C>(acc[p], term);
                if (sf == C::SF - 1) {
                    const int o = nf * C::PE + p;
                    ob.v[o] = C::finish(tree_sum<C, C::SPLIT>::of(acc[p]), m[C::QN > 1 ? o : 0], s[C::QN > 1 ? o : 0]);
                }
            }
            if (t == C::NF * C::SF - 1) out.write(ob);
        }
    }
}

// ------------------------------------------------------------------------------- global pooling
// HW*NF iterations a frame: each pixel is read once and folded into C running states, PE a step.
// II: a float sum comes back to the same channel every NF steps, and waits for its adder there.
template <class C>
void global_pool_stage(fifo<pack<typename C::in_t, C::CI> >& in, fifo<pack<typename C::out_t, C::CI> >& out,
                       int frames) {
    typename C::state_t st[C::CI];
#pragma HLS ARRAY_PARTITION variable=st cyclic factor=C::PE
    pack<typename C::in_t, C::CI> px;
    pack<typename C::out_t, C::CI> ob;
frame:
    for (int f = 0; f < frames; f++) {
    ticks:
        for (int t = 0; t < C::HW * C::NF; t++) {
#pragma HLS PIPELINE II=C::II
            const int i = t / C::NF, nf = t % C::NF;
            if (nf == 0) px = in.read();
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                const int c = nf * C::PE + p;
                if (i == 0) st[c] = C::gstart(px.v[c]);
                else C::fold(st[c], px.v[c]);
                if (i == C::HW - 1) ob.v[c] = C::gfinish(st[c]);
            }
        }
        out.write(ob);
    }
}

// ------------------------------------------------------------------------------- pixel-wise
// PIX*NF iterations a frame: a pixel of each input is read at the first of its NF steps, PE
// channels are computed a step, the output pixel is written after the last (quantize,
// dequantize, int8 residual add, element-wise chains).
template <class C>
void map_stage(fifo<pack<typename C::a_t, C::CI> >& a, fifo<pack<typename C::out_t, C::CI> >& out, int frames) {
    pack<typename C::a_t, C::CI> pa;
    pack<typename C::out_t, C::CI> ob;
frame:
    for (int f = 0; f < frames; f++) {
    ticks:
        for (int t = 0; t < C::PIX * C::NF; t++) {
#pragma HLS PIPELINE II=1
            const int nf = t % C::NF;
            if (nf == 0) pa = a.read();
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                const int c = nf * C::PE + p;
                ob.v[c] = C::calc(pa.v[c], c);
            }
            if (nf == C::NF - 1) out.write(ob);
        }
    }
}

template <class C>
void map_stage(fifo<pack<typename C::a_t, C::CI> >& a, fifo<pack<typename C::b_t, C::CI> >& b,
               fifo<pack<typename C::out_t, C::CI> >& out, int frames) {
    pack<typename C::a_t, C::CI> pa;
    pack<typename C::b_t, C::CI> pb;
    pack<typename C::out_t, C::CI> ob;
frame:
    for (int f = 0; f < frames; f++) {
    ticks:
        for (int t = 0; t < C::PIX * C::NF; t++) {
#pragma HLS PIPELINE II=1
            const int nf = t % C::NF;
            if (nf == 0) {
                pa = a.read();
                pb = b.read();
            }
            for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                const int c = nf * C::PE + p;
                ob.v[c] = C::calc(pa.v[c], pb.v[c], c);
            }
            if (nf == C::NF - 1) out.write(ob);
        }
    }
}

}  // namespace irc

#endif  // IRC_DATAFLOW_H
