// irc HLS kernel library: the loop nests of every kernel kind, written once as templates.
//
// Each generated kernel (kernels/k*.cpp) defines a configuration struct C (shape constants, the
// parallelism factor P, the number types data_t/acc_t/store_t and the epilogue) and calls one
// of these templates from its top function, which carries the m_axi/s_axilite interface. dense,
// conv2d and global_pool serve every number format: they take C wrapped in a numeric policy
// (real_policy for float and ap_fixed, int8_policy for quantized layers).
// Loops follow one pattern: burst loads into on-chip buffers (PIPELINE II=1), a compute loop
// pipelined at II=1 whose inner loop over P lanes is fully unrolled (the arrays it reads are
// partitioned so that P lanes read in the same cycle), and a store loop.
#ifndef IRC_HLS_H
#define IRC_HLS_H

#include <cmath>
#include <cstdint>

// Loop labels name loops in HLS reports; g++ would call them unused.
#pragma GCC diagnostic ignored "-Wunused-label"

#if __has_include(<hls_stream.h>)
#include <hls_stream.h>
namespace irc {
template <class T>
using stream = hls::stream<T>;
}
#else
#include <deque>
namespace irc {
// A FIFO with the hls::stream interface, for builds without the HLS headers (C simulation only).
template <class T>
class stream {
   public:
    void write(const T& v) { q_.push_back(v); }
    T read() {
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    bool empty() const { return q_.empty(); }

   private:
    std::deque<T> q_;
};
}  // namespace irc
#endif

namespace irc {

// P values moved together through a stream (one beat of a DATAFLOW channel).
template <class T, int P>
struct pack {
    T v[P];
};

// ------------------------------------------------------------------------------- numeric policies
// dense, conv2d and global_pool are written once; a numeric policy Q, built on the kernel's
// configuration C (shape constants, the parallelism factor P), says what their arithmetic is:
//   x_t, w_t, b_t, y_t          element types of input, weights, bias and output in device memory
//   xbuf_t, wbuf_t, bbuf_t, acc_t  types of the on-chip buffers and of the accumulators
//   load_x, load_w, load_b      device element -> on-chip element
//   mac(acc, x, w)              acc += x * w
//   finish(acc, c, o, post...)  output element o (of output channel c) from its accumulator and
//                               the epilogue's other operands: a residual, or requantize factors
// and, for global_pool, the running reduction of one channel:
//   state_t, start(channel), fold(state, x), finish(state)

// Values as they are: float or ap_fixed (C derives from irc_precision), or plain integers in max
// pooling. C gives acc_t (exact sums for fixed point); for dense and conv HAS_BIAS, HAS_RES and
// out(), the fused activation rounded once to data_t; for global pooling AVG and HW.
template <class C>
struct real_policy : C {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    typedef typename C::store_t x_t;
    typedef typename C::store_t w_t;
    typedef typename C::store_t b_t;
    typedef typename C::store_t y_t;
    typedef data_t xbuf_t;
    typedef data_t wbuf_t;
    typedef data_t bbuf_t;
    static xbuf_t load_x(x_t v) { return C::load(v); }
    static wbuf_t load_w(w_t v) { return C::load(v); }
    static bbuf_t load_b(const b_t* bias, int c) { return C::HAS_BIAS ? C::load(bias[c]) : data_t(0); }
    static const int SPLIT = C::ACC_SPLIT;  // partial sums per lane (see partial sums below)
    static void mac(acc_t& acc, xbuf_t x, wbuf_t w) {
#pragma HLS INLINE
        acc += x * w;
    }
    static acc_t add(acc_t a, acc_t b) {
#pragma HLS INLINE
        return a + b;
    }
    static y_t finish(acc_t v, int, int o, const typename C::store_t* res) {
#pragma HLS INLINE
        if (C::HAS_RES) v += C::load(res[o]);
        return C::store(C::out(v));
    }
    struct state_t {
        acc_t sum;
        data_t best;
    };
    static state_t start(const x_t* channel) {
        state_t s;
        s.sum = 0;
        s.best = C::load(channel[0]);
        return s;
    }
    static void fold(state_t& s, x_t x) {
#pragma HLS INLINE
        const data_t v = C::load(x);
        s.sum += v;
        s.best = v > s.best ? v : s.best;
    }
    static y_t finish(const state_t& s) { return C::store(C::AVG ? C::mean(s.sum, C::HW) : s.best); }
};

// The integer arithmetic of irc's quantization (irc/ir/quant_arith.py), bit for bit:
// int32 accumulators wrap modulo 2^32; requantize is clamp(zp + ((acc * M0 + 2^(shift-1)) >> shift))
// with a 64-bit product and an arithmetic shift (round half up).
inline int32_t wrap_add(int32_t a, int32_t b) { return int32_t(uint32_t(a) + uint32_t(b)); }

inline int64_t requantize(int64_t acc, int64_t m0, int shift, int64_t zp, int64_t lo, int64_t hi) {
    const int64_t y = ((acc * m0 + (int64_t(1) << (shift - 1))) >> shift) + zp;
    return y < lo ? lo : (y > hi ? hi : y);
}

// int8: u8/i8 activations (zero point XZP) times i8 weights into wrapping int32 accumulators
// that start at the int32 bias; the output is requantized per output channel (mult, shift) to
// y_t with zero point YZP, clamped to [YMIN, YMAX]. C gives x_t, y_t and those constants.
// Global average pooling sums x - XZP in 64 bits and requantizes the sum with C's M0 and SH.
template <class C>
struct int8_policy : C {
    typedef int8_t w_t;
    typedef int32_t b_t;
    typedef int16_t xbuf_t;  // x - XZP
    typedef int8_t wbuf_t;
    typedef int32_t bbuf_t;
    typedef int32_t acc_t;
    static xbuf_t load_x(typename C::x_t v) { return int16_t(int(v) - C::XZP); }
    static wbuf_t load_w(w_t v) { return v; }
    static bbuf_t load_b(const b_t* bias, int c) { return bias[c]; }
    static const int SPLIT = 1;  // an integer add closes in one cycle
    static void mac(acc_t& acc, xbuf_t x, wbuf_t w) {
#pragma HLS INLINE
        acc = wrap_add(acc, int32_t(x) * int32_t(w));
    }
    static acc_t add(acc_t a, acc_t b) {
#pragma HLS INLINE
        return wrap_add(a, b);
    }
    static typename C::y_t finish(acc_t v, int c, int, const int32_t* mult, const int32_t* shift) {
#pragma HLS INLINE
        return typename C::y_t(requantize(v, mult[c], shift[c], C::YZP, C::YMIN, C::YMAX));
    }
    typedef int64_t state_t;
    static state_t start(const typename C::x_t*) { return 0; }
    static void fold(state_t& s, typename C::x_t x) {
#pragma HLS INLINE
        s += int(x) - C::XZP;
    }
    static typename C::y_t finish(state_t s) {
        return typename C::y_t(requantize(s, C::M0, C::SH, C::YZP, C::YMIN, C::YMAX));
    }
};

// ------------------------------------------------------------------------------- partial sums
// A float adder takes several cycles (Q::SPLIT of them at most), so with one accumulator per
// lane each product would wait for the previous sum and the MAC loop could not reach II=1. Each
// lane keeps SPLIT partial sums in a rotating register file instead: a product joins the sum
// begun SPLIT iterations earlier, which is ready, and the partials are added once per output in
// a tree. Fixed point and int8 add in one cycle: SPLIT = 1, one accumulator as before.
template <class Q>
void start_sums(typename Q::acc_t (&r)[Q::SPLIT], typename Q::acc_t first) {
#pragma HLS INLINE
    for (int s = 0; s < Q::SPLIT; s++) {
#pragma HLS UNROLL
        r[s] = s == 0 ? first : typename Q::acc_t(0);
    }
}

template <class Q, class X, class W>
void add_product(typename Q::acc_t (&r)[Q::SPLIT], X x, W w) {
#pragma HLS INLINE
    typename Q::acc_t next = r[Q::SPLIT - 1];  // begun SPLIT iterations ago
    Q::mac(next, x, w);
    for (int s = Q::SPLIT - 1; s > 0; s--) {
#pragma HLS UNROLL
        r[s] = r[s - 1];
    }
    r[0] = next;
}

template <class Q, int N>
struct tree_sum {
    static typename Q::acc_t of(const typename Q::acc_t* a) {
#pragma HLS INLINE
        return Q::add(tree_sum<Q, N / 2>::of(a), tree_sum<Q, N - N / 2>::of(a + N / 2));
    }
};

template <class Q>
struct tree_sum<Q, 1> {
    static typename Q::acc_t of(const typename Q::acc_t* a) { return a[0]; }
};

// ------------------------------------------------------------------------------- dense (GEMM)
// y[M][N] = finish(bias[N] + x[M][K] @ w[K][N], post...); P output columns per cycle.
template <class Q, class... Post>
void dense(const typename Q::x_t* x, const typename Q::w_t* w, const typename Q::b_t* bias,
           typename Q::y_t* y, Post... post) {
    typedef typename Q::acc_t acc_t;
    static_assert(Q::N % Q::P == 0, "the parallelism factor must divide N");
    typename Q::xbuf_t xbuf[Q::M * Q::K];
    typename Q::wbuf_t wbuf[Q::K][Q::P];
#pragma HLS ARRAY_PARTITION variable=wbuf dim=2 complete
    typename Q::bbuf_t bbuf[Q::P];
#pragma HLS ARRAY_PARTITION variable=bbuf complete
    acc_t acc[Q::P][Q::SPLIT];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=0
load_x:
    for (int i = 0; i < Q::M * Q::K; i++) {
#pragma HLS PIPELINE II=1
        xbuf[i] = Q::load_x(x[i]);
    }
tile:
    for (int t = 0; t < Q::N / Q::P; t++) {
    load_w:
        for (int i = 0; i < Q::K * Q::P; i++) {
#pragma HLS PIPELINE II=1
            const int k = i / Q::P, p = i % Q::P;
            wbuf[k][p] = Q::load_w(w[k * Q::N + t * Q::P + p]);
        }
    load_b:
        for (int p = 0; p < Q::P; p++) {
#pragma HLS PIPELINE II=1
            bbuf[p] = Q::load_b(bias, t * Q::P + p);
        }
    row:
        for (int m = 0; m < Q::M; m++) {
        init:
            for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                start_sums<Q>(acc[p], acc_t(bbuf[p]));
            }
        mac:
            for (int k = 0; k < Q::K; k++) {
#pragma HLS PIPELINE II=1
                const typename Q::xbuf_t xv = xbuf[m * Q::K + k];
                for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                    add_product<Q>(acc[p], xv, wbuf[k][p]);
                }
            }
        store:
            for (int p = 0; p < Q::P; p++) {
#pragma HLS PIPELINE II=1
                const int n = t * Q::P + p;
                y[m * Q::N + n] = Q::finish(tree_sum<Q, Q::SPLIT>::of(acc[p]), n, m * Q::N + n, post...);
            }
        }
    }
}

// ------------------------------------------------------------------------------- conv (2-D)
// Tiled direct convolution, no im2col: one input image is held on chip, P output channels
// (of one group) are computed per tile, each output pixel accumulating CI/G*KH*KW taps at II=1.
// Padding reads xbuf_t(0): real zero (for int8, the zero point, as x - XZP is buffered).
template <class Q, class... Post>
void conv2d(const typename Q::x_t* x, const typename Q::w_t* w, const typename Q::b_t* bias,
            typename Q::y_t* y, Post... post) {
    typedef typename Q::xbuf_t xbuf_t;
    typedef typename Q::acc_t acc_t;
    const int CIG = Q::CI / Q::G, COG = Q::CO / Q::G, TAPS = CIG * Q::KH * Q::KW;
    const int IMG = Q::CI * Q::H * Q::W;
    static_assert((Q::CO / Q::G) % Q::P == 0, "the parallelism factor must divide the output channels per group");
    xbuf_t img[IMG];
    typename Q::wbuf_t wt[Q::P][TAPS];
#pragma HLS ARRAY_PARTITION variable=wt dim=1 complete
    typename Q::bbuf_t bt[Q::P];
#pragma HLS ARRAY_PARTITION variable=bt complete
    acc_t acc[Q::P][Q::SPLIT];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=0
batch:
    for (int n = 0; n < Q::NB; n++) {
    load_x:
        for (int i = 0; i < IMG; i++) {
#pragma HLS PIPELINE II=1
            img[i] = Q::load_x(x[n * IMG + i]);
        }
    tile:
        for (int t = 0; t < Q::CO / Q::P; t++) {
            const int co0 = t * Q::P;
            const int g = co0 / COG;
        load_w:
            for (int i = 0; i < Q::P * TAPS; i++) {
#pragma HLS PIPELINE II=1
                wt[i / TAPS][i % TAPS] = Q::load_w(w[co0 * TAPS + i]);
            }
        load_b:
            for (int p = 0; p < Q::P; p++) {
#pragma HLS PIPELINE II=1
                bt[p] = Q::load_b(bias, co0 + p);
            }
        pixel:
            for (int o = 0; o < Q::OH * Q::OW; o++) {
                const int oh = o / Q::OW, ow = o % Q::OW;
            init:
                for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                    start_sums<Q>(acc[p], acc_t(bt[p]));
                }
            mac:
                for (int i = 0; i < TAPS; i++) {
#pragma HLS PIPELINE II=1
                    const int ci = i / (Q::KH * Q::KW), kh = (i / Q::KW) % Q::KH, kw = i % Q::KW;
                    const int ih = oh * Q::SH - Q::PT + kh * Q::DH, iw = ow * Q::SW - Q::PL + kw * Q::DW;
                    const bool inside = ih >= 0 && ih < Q::H && iw >= 0 && iw < Q::W;
                    const xbuf_t xv = inside ? img[((g * CIG + ci) * Q::H + ih) * Q::W + iw] : xbuf_t(0);
                    for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                        add_product<Q>(acc[p], xv, wt[p][i]);
                    }
                }
            store:
                for (int p = 0; p < Q::P; p++) {
#pragma HLS PIPELINE II=1
                    const int co = co0 + p;
                    const int oi = ((n * Q::CO + co) * Q::OH + oh) * Q::OW + ow;
                    y[oi] = Q::finish(tree_sum<Q, Q::SPLIT>::of(acc[p]), co, oi, post...);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------- pooling (2-D)
// Max or average over windows; P channel planes on chip, P outputs per cycle.
template <class C>
void pool2d(const typename C::store_t* x, typename C::store_t* y) {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    const int HW = C::H * C::W;
    static_assert(C::C % C::P == 0, "the parallelism factor must divide the channels");
    data_t plane[C::P][HW];
#pragma HLS ARRAY_PARTITION variable=plane dim=1 complete
batch:
    for (int n = 0; n < C::NB; n++) {
    tile:
        for (int t = 0; t < C::C / C::P; t++) {
            const int c0 = n * C::C + t * C::P;
        load_x:
            for (int i = 0; i < C::P * HW; i++) {
#pragma HLS PIPELINE II=1
                plane[i / HW][i % HW] = C::load(x[c0 * HW + i]);
            }
        pixel:
            for (int o = 0; o < C::OH * C::OW; o++) {
#pragma HLS PIPELINE II=1
                const int oh = o / C::OW, ow = o % C::OW;
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc_t sum = 0;
                    data_t best = C::lowest();
                    int count = 0;
                    bool any = false;
                    for (int kh = 0; kh < C::KH; kh++) {
                        for (int kw = 0; kw < C::KW; kw++) {
                            const int ih = oh * C::SH - C::PT + kh * C::DH, iw = ow * C::SW - C::PL + kw * C::DW;
                            const bool inside = ih >= 0 && ih < C::H && iw >= 0 && iw < C::W;
                            const bool padded = ih >= -C::PT && ih < C::H + C::PB && iw >= -C::PL && iw < C::W + C::PR;
                            if (inside) {
                                const data_t v = plane[p][ih * C::W + iw];
                                sum += v;
                                best = (!any || v > best) ? v : best;
                                any = true;
                            }
                            count += (C::COUNT_PAD ? padded : inside) ? 1 : 0;
                        }
                    }
                    data_t r;
                    if (C::AVG) r = count > 0 ? C::mean(sum, count) : data_t(0);
                    else r = best;
                    y[(c0 + p) * C::OH * C::OW + o] = C::store(r);
                }
            }
        }
    }
}

// Global max or average over all HW positions of each channel; P channels per cycle. Each
// channel's running state (sum and maximum, or an int8 sum) is the numeric policy Q's.
template <class Q>
void global_pool(const typename Q::x_t* x, typename Q::y_t* y) {
    static_assert(Q::C % Q::P == 0, "the parallelism factor must divide the channels");
    typename Q::state_t st[Q::P];
#pragma HLS ARRAY_PARTITION variable=st complete
batch:
    for (int n = 0; n < Q::NB; n++) {
    tile:
        for (int t = 0; t < Q::C / Q::P; t++) {
            const int c0 = n * Q::C + t * Q::P;
        init:
            for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                st[p] = Q::start(x + (c0 + p) * Q::HW);
            }
        reduce:
            for (int i = 0; i < Q::HW; i++) {
#pragma HLS PIPELINE II=1
                for (int p = 0; p < Q::P; p++) {
#pragma HLS UNROLL
                    Q::fold(st[p], x[(c0 + p) * Q::HW + i]);
                }
            }
        store:
            for (int p = 0; p < Q::P; p++) {
#pragma HLS PIPELINE II=1
                y[c0 + p] = Q::finish(st[p]);
            }
        }
    }
}

// ------------------------------------------------------------------------------- softmax
// Along an axis of extent LEN (stride INNER); exp and sums in float whatever the data type.
template <class C>
void softmax(const typename C::store_t* x, typename C::store_t* y) {
    float buf[C::LEN];
#pragma HLS ARRAY_PARTITION variable=buf cyclic factor=C::P
    static_assert(C::LEN % C::P == 0, "the parallelism factor must divide the axis");
rows:
    for (int r = 0; r < C::OUTER * C::INNER; r++) {
        const int base = (r / C::INNER) * C::LEN * C::INNER + r % C::INNER;
    load_x:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
            buf[c] = C::to_f(C::load(x[base + c * C::INNER]));
        }
        float mx = buf[0];
    max:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            mx = buf[c] > mx ? buf[c] : mx;
        }
        float sum = 0.0f;
    exp:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            buf[c] = std::exp(buf[c] - mx);
            sum += buf[c];
        }
    store:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
            y[base + c * C::INNER] = C::store(C::from_f(buf[c] / sum));
        }
    }
}

// ------------------------------------------------------------------------------- argmax
// Index (int64) of the largest element along the axis: the first of equal ones, or the last
// (LAST); a NaN beats every number.
template <class C>
void argmax(const typename C::store_t* x, int64_t* y) {
    typedef typename C::data_t data_t;
rows:
    for (int r = 0; r < C::OUTER * C::INNER; r++) {
        const int base = (r / C::INNER) * C::LEN * C::INNER + r % C::INNER;
        data_t best = C::load(x[base]);
        int64_t idx = 0;
    scan:
        for (int c = 1; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            const data_t v = C::load(x[base + c * C::INNER]);
            bool take;
            if (C::is_nan(v)) take = C::LAST || !C::is_nan(best);
            else take = !C::is_nan(best) && (C::LAST ? !(v < best) : v > best);
            if (take) {
                best = v;
                idx = c;
            }
        }
        y[r] = idx;
    }
}

// ------------------------------------------------------------------------------- element-wise
// Stages of a DATAFLOW element-wise kernel: read (with broadcasting), compute, write.
template <class C, class Index>
void read_stream(const typename C::store_t* x, stream<pack<typename C::data_t, C::P> >& s) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
read:
    for (int i = 0; i < C::TOTAL / C::P; i++) {
#pragma HLS PIPELINE II=1
        pack<typename C::data_t, C::P> v;
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            v.v[p] = C::load(x[Index::at(i * C::P + p)]);
        }
        s.write(v);
    }
}

template <class C>
void write_stream(stream<pack<typename C::data_t, C::P> >& s, typename C::store_t* y) {
write:
    for (int i = 0; i < C::TOTAL / C::P; i++) {
#pragma HLS PIPELINE II=1
        const pack<typename C::data_t, C::P> v = s.read();
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            y[i * C::P + p] = C::store(v.v[p]);
        }
    }
}

// ------------------------------------------------------------------------------- int8
// y = requantize(AM * (a - AZP) + BM * (b - BZP)), element-wise.
template <class C>
void qadd(const typename C::a_t* a, const typename C::b_t* b, typename C::y_t* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
add:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            const int64_t acc = int64_t(C::AM) * (int(a[i + p]) - C::AZP) + int64_t(C::BM) * (int(b[i + p]) - C::BZP);
            y[i + p] = typename C::y_t(requantize(acc, C::M0, C::SH, C::YZP, C::YMIN, C::YMAX));
        }
    }
}

// float -> int8 at the edge of a quantized region: saturate(round_half_even(x / SCALE) + ZP), in float.
template <class C>
void quantize(const float* x, typename C::y_t* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
quant:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            float r = std::nearbyint(x[i + p] / C::scale());
            if (std::isnan(r)) r = 0.0f;
            r += float(C::ZP);
            y[i + p] = typename C::y_t(r < float(C::LO) ? C::LO : (r > float(C::HI) ? C::HI : r));
        }
    }
}

// int8 -> float: (q - ZP) * SCALE in float.
template <class C>
void dequantize(const typename C::x_t* x, float* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
dequant:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            y[i + p] = float(int64_t(x[i + p]) - C::ZP) * C::scale();
        }
    }
}

}  // namespace irc

#endif  // IRC_HLS_H
