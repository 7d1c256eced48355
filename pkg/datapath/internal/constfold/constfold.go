// Package constfold specializes an eBPF program for the values of its read-only globals
// (volatile const in .rodata): their loads become immediates, the branches they decide are
// settled, and the instructions and functions left unreachable or without effect are dropped,
// so that a program instance pays only for the features its constants turn on.
//
// The kernel verifier already knows these values (the map is frozen) and prunes the paths
// they rule out, but it keeps the tests themselves whenever a test's target is also reached
// some other way, and it keeps every load and the arithmetic on it. Cilium's loader folds its
// configuration into the instructions for the same reason.
package constfold

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Stats says what a Fold did.
type Stats struct {
	Loads    int // loads of read-only data turned into immediates
	Branches int // conditional jumps settled
	Removed  int // instructions dropped (unreachable, without effect, or a settled jump)
	Before   int // instructions (raw slots) before
	After    int // and after
}

// ReadOnlyData is the contents of every read-only data section of spec (by map name) with
// its variables' values as set, as the maps will be created and frozen.
func ReadOnlyData(spec *ebpf.CollectionSpec) (map[string][]byte, error) {
	ro := make(map[string][]byte)
	for name, ms := range spec.Maps {
		if ms.Flags&unix.BPF_F_RDONLY_PROG == 0 || len(ms.Contents) != 1 {
			continue
		}
		data, ok := ms.Contents[0].Value.([]byte)
		if !ok {
			continue
		}
		ro[name] = append([]byte(nil), data...)
	}
	for name, vs := range spec.Variables {
		data, ok := ro[vs.SectionName]
		if !ok || vs.Value == nil {
			continue
		}
		if int(vs.Offset)+len(vs.Value) > len(data) {
			return nil, fmt.Errorf("variable %s: beyond its section %s", name, vs.SectionName)
		}
		copy(data[vs.Offset:], vs.Value)
	}
	return ro, nil
}

// Fold specializes insns (a program with its functions, as a ProgramSpec holds it) for the
// read-only data ro. It repeats until nothing more folds.
func Fold(insns asm.Instructions, ro map[string][]byte) (asm.Instructions, Stats, error) {
	st := Stats{Before: int(insns.Size() / asm.InstructionSize)}
	data := newROData(ro)
	sc := &scratch{}
	insns = append(asm.Instructions(nil), insns...) // rewritten in place: the caller's stays
	for {
		p, err := newProgram(insns, data, sc)
		if err != nil {
			return nil, Stats{}, err
		}
		p.analyse()
		loads, branches := p.rewrite()
		p.removeDead()
		out, removed, err := p.emit()
		if err != nil {
			return nil, Stats{}, err
		}
		st.Loads += loads
		st.Branches += branches
		st.Removed += removed
		insns = out
		if loads+branches+removed == 0 {
			break
		}
	}
	st.After = int(insns.Size() / asm.InstructionSize)
	return insns, st, nil
}

// kind of a register's abstract value.
type kind uint8

const (
	unknown kind = iota
	known        // v is its value
	roPtr        // a pointer v bytes into read-only map ro
)

type value struct {
	k  kind
	ro uint8 // roPtr: which read-only map (roData)
	v  uint64
}

// roData is the read-only data by map, numbered for value.ro.
type roData struct {
	index map[string]uint8
	data  [][]byte
}

func newROData(ro map[string][]byte) *roData {
	d := &roData{index: make(map[string]uint8)}
	for name, b := range ro {
		if b != nil && len(d.data) < 256 {
			d.index[name] = uint8(len(d.data))
			d.data = append(d.data, b)
		}
	}
	return d
}

// scratch is memory a Fold's rounds share, so that later rounds reuse the first's.
type scratch struct {
	states       []regs
	in           []*regs
	slot, bySlot []int
	start, dead  []bool
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// regs are the abstract values of r0-r10 before an instruction; nil: not reached.
type regs [11]value

type program struct {
	insns  []asm.Instruction
	ro     *roData
	states []regs
	slot   []int          // raw slot of each instruction
	bySlot []int          // raw slot -> instruction, -1 inside a two-slot one
	funcs  map[string]int // function symbol -> its first instruction
	start  []bool         // the first instruction of a function
	in     []*regs        // abstract state before each instruction
	dead   []bool         // to drop
}

var errUnsupported = errors.New("unsupported instruction")

// newProgram takes insns over (they are rewritten in place).
func newProgram(insns asm.Instructions, ro *roData, sc *scratch) (*program, error) {
	sc.states = grow(sc.states, len(insns))
	sc.in = grow(sc.in, len(insns))
	sc.slot = grow(sc.slot, len(insns))
	sc.bySlot = grow(sc.bySlot, int(insns.Size()/asm.InstructionSize))
	sc.start = grow(sc.start, len(insns))
	sc.dead = grow(sc.dead, len(insns))
	p := &program{
		insns:  insns,
		ro:     ro,
		states: sc.states,
		slot:   sc.slot,
		bySlot: sc.bySlot,
		funcs:  make(map[string]int),
		start:  sc.start,
		in:     sc.in,
		dead:   sc.dead,
	}
	s := 0
	for i := range p.insns {
		ins := &p.insns[i]
		p.slot[i] = s
		p.bySlot[s] = i
		if ins.Width() == 2 {
			p.bySlot[s+1] = -1
		}
		s += int(ins.Width())
		if sym := ins.Symbol(); sym != "" {
			p.funcs[sym] = i
			p.start[i] = true
		}
	}
	for i, ins := range p.insns {
		op := ins.OpCode
		switch {
		case op.Class().IsJump() && op.Class() == asm.Jump32Class && op.JumpOp() == asm.Ja:
			return nil, fmt.Errorf("insn %d (%v): long jump: %w", i, ins, errUnsupported)
		case op.Class().IsJump() && op.JumpOp() == asm.JCOND:
			return nil, fmt.Errorf("insn %d (%v): %w", i, ins, errUnsupported)
		case isJump(ins):
			if _, ok := p.target(i); !ok {
				return nil, fmt.Errorf("insn %d (%v): jump to no instruction", i, ins)
			}
		}
	}
	if len(p.insns) == 0 || !p.start[0] {
		return nil, errors.New("program does not start with a function symbol")
	}
	return p, nil
}

// isJump: a jump within the function (conditional or not).
func isJump(ins asm.Instruction) bool {
	if !ins.OpCode.Class().IsJump() {
		return false
	}
	op := ins.OpCode.JumpOp()
	return op != asm.Call && op != asm.Exit
}

func (p *program) target(i int) (int, bool) {
	s := p.slot[i] + 1 + int(p.insns[i].Offset)
	if s < 0 || s >= len(p.bySlot) || p.bySlot[s] < 0 {
		return 0, false
	}
	return p.bySlot[s], true
}

// analyse runs the abstract interpretation from the program's entry, entering a function
// when a reached instruction calls it.
func (p *program) analyse() {
	states := p.states
	pending := make([]bool, len(p.insns))
	more := false
	push := func(i int, r *regs) {
		if p.in[i] == nil {
			states[i] = *r
			p.in[i] = &states[i]
			pending[i], more = true, true
			return
		}
		for n := range p.in[i] {
			if p.in[i][n] != r[n] && p.in[i][n].k != unknown {
				p.in[i][n] = value{}
				pending[i], more = true, true
			}
		}
	}
	push(0, &regs{})
	// Sweeps in program order: jumps mostly go forward, so one sweep settles nearly all.
	for more {
		more = false
		for i := range p.insns {
			if !pending[i] {
				continue
			}
			pending[i] = false
			ins := p.insns[i]
			if ins.IsFunctionReference() {
				if f, ok := p.funcs[ins.Reference()]; ok && p.in[f] == nil {
					push(f, &regs{})
				}
			}
			out := p.step(i, *p.in[i])
			succ, n := p.successors(i, p.in[i])
			for _, s := range succ[:n] {
				push(s, &out)
			}
		}
	}
}

// successors of instruction i given the state before it: a settled jump has one.
func (p *program) successors(i int, r *regs) (succ [2]int, n int) {
	ins := p.insns[i]
	if isNop(ins) { // possibly in place of a two-slot instruction: no offset to follow
		return [2]int{i + 1}, 1
	}
	if ins.OpCode.Class().IsJump() {
		switch op := ins.OpCode.JumpOp(); op {
		case asm.Exit:
			return succ, 0
		case asm.Call:
			return [2]int{i + 1}, 1
		case asm.Ja:
			t, _ := p.target(i)
			return [2]int{t}, 1
		default:
			t, _ := p.target(i)
			if taken, ok := p.decide(ins, r); ok {
				if taken {
					return [2]int{t}, 1
				}
				return [2]int{i + 1}, 1
			}
			return [2]int{i + 1, t}, 2
		}
	}
	return [2]int{i + 1}, 1
}

// decide settles a conditional jump whose operands are known.
func (p *program) decide(ins asm.Instruction, r *regs) (taken, ok bool) {
	if r == nil {
		return false, false
	}
	a := r[ins.Dst]
	var b value
	if ins.OpCode.Source() == asm.RegSource {
		b = r[ins.Src]
	} else {
		b = value{k: known, v: uint64(ins.Constant)} // sign-extended imm
	}
	if a.k != known || b.k != known {
		return false, false
	}
	x, y := a.v, b.v
	sx, sy := int64(x), int64(y)
	if ins.OpCode.Class() == asm.Jump32Class {
		x, y = uint64(uint32(x)), uint64(uint32(y))
		sx, sy = int64(int32(x)), int64(int32(y))
	}
	switch ins.OpCode.JumpOp() {
	case asm.JEq:
		return x == y, true
	case asm.JNE:
		return x != y, true
	case asm.JGT:
		return x > y, true
	case asm.JGE:
		return x >= y, true
	case asm.JLT:
		return x < y, true
	case asm.JLE:
		return x <= y, true
	case asm.JSGT:
		return sx > sy, true
	case asm.JSGE:
		return sx >= sy, true
	case asm.JSLT:
		return sx < sy, true
	case asm.JSLE:
		return sx <= sy, true
	case asm.JSet:
		return x&y != 0, true
	}
	return false, false
}

// step is the state after instruction i.
func (p *program) step(i int, r regs) regs {
	ins := p.insns[i]
	op := ins.OpCode
	if btf.CORERelocationMetadata(&p.insns[i]) != nil {
		// Its immediate or offset is rewritten at load: nothing it computes is known here.
		if op.Class().IsALU() || op.Class().IsLoad() {
			r[ins.Dst] = value{}
		}
		return r
	}
	switch cls := op.Class(); {
	case op == asm.LoadImmOp(asm.DWord):
		switch {
		case ins.Src == asm.R0:
			r[ins.Dst] = value{k: known, v: uint64(ins.Constant)}
		case ins.Src == asm.PseudoMapValue && p.isRO(ins.Reference()):
			r[ins.Dst] = value{k: roPtr, v: uint64(ins.Constant) >> 32, ro: p.ro.index[ins.Reference()]}
		default:
			r[ins.Dst] = value{}
		}
	case cls == asm.LdClass: // legacy packet loads: r0 out, r1-r5 clobbered
		for n := asm.R0; n <= asm.R5; n++ {
			r[n] = value{}
		}
	case cls == asm.LdXClass:
		r[ins.Dst] = p.load(ins, r[ins.Src])
	case cls == asm.StXClass && op.Mode() == asm.AtomicMode:
		r[ins.Src], r[asm.R0] = value{}, value{}
	case cls.IsStore():
	case cls.IsALU():
		r[ins.Dst] = alu(ins, r)
	case cls.IsJump() && op.JumpOp() == asm.Call:
		for n := asm.R0; n <= asm.R5; n++ {
			r[n] = value{}
		}
	}
	return r
}

func (p *program) isRO(name string) bool {
	_, ok := p.ro.index[name]
	return ok
}

// load is the value a load from src gives, when src points into read-only data.
func (p *program) load(ins asm.Instruction, src value) value {
	if src.k != roPtr || ins.OpCode.Mode() != asm.MemMode {
		return value{}
	}
	data := p.ro.data[src.ro]
	off := int64(src.v) + int64(ins.Offset)
	n := int64(ins.OpCode.Size().Sizeof())
	if off < 0 || off+n > int64(len(data)) {
		return value{}
	}
	b := data[off : off+n]
	switch n {
	case 1:
		return value{k: known, v: uint64(b[0])}
	case 2:
		return value{k: known, v: uint64(binary.LittleEndian.Uint16(b))}
	case 4:
		return value{k: known, v: uint64(binary.LittleEndian.Uint32(b))}
	case 8:
		return value{k: known, v: binary.LittleEndian.Uint64(b)}
	}
	return value{}
}

// alu is the value an ALU instruction leaves in its destination.
func alu(ins asm.Instruction, r regs) value {
	op := ins.OpCode
	wide := op.Class() == asm.ALU64Class
	a := r[ins.Dst]
	var b value
	if op.ALUOp() != asm.Swap && op.Source() == asm.RegSource {
		b = r[ins.Src]
	} else {
		b = value{k: known, v: uint64(ins.Constant)}
	}
	switch aop := op.ALUOp(); {
	case aop == asm.Mov && ins.Offset == 0:
		if wide || b.k != known {
			if !wide {
				return value{}
			}
			return b
		}
		return value{k: known, v: uint64(uint32(b.v))}
	case aop == asm.Swap:
		if a.k != known {
			return value{}
		}
		return swap(op, a.v, ins.Constant)
	case (aop == asm.Add || aop == asm.Sub) && wide && a.k == roPtr && b.k == known:
		// A pointer into the read-only data, moved: loads through it stay known.
		if aop == asm.Sub {
			b.v = -b.v
		}
		return value{k: roPtr, v: a.v + b.v, ro: a.ro}
	}
	if a.k != known || (b.k != known && op.ALUOp() != asm.Neg) || ins.Offset != 0 {
		return value{}
	}
	v, ok := compute(op.ALUOp(), a.v, b.v, wide)
	if !ok {
		return value{}
	}
	return value{k: known, v: v}
}

func compute(op asm.ALUOp, x, y uint64, wide bool) (uint64, bool) {
	width := uint64(64)
	if !wide {
		x, y, width = uint64(uint32(x)), uint64(uint32(y)), 32
	}
	var v uint64
	switch op {
	case asm.Add:
		v = x + y
	case asm.Sub:
		v = x - y
	case asm.Mul:
		v = x * y
	case asm.Or:
		v = x | y
	case asm.And:
		v = x & y
	case asm.Xor:
		v = x ^ y
	case asm.Neg:
		v = -x
	case asm.Div, asm.Mod:
		if y == 0 {
			return 0, false
		}
		if op == asm.Div {
			v = x / y
		} else {
			v = x % y
		}
	case asm.LSh, asm.RSh, asm.ArSh:
		if y >= width {
			return 0, false
		}
		switch op {
		case asm.LSh:
			v = x << y
		case asm.RSh:
			v = x >> y
		default:
			if wide {
				v = uint64(int64(x) >> y)
			} else {
				v = uint64(uint32(int32(uint32(x)) >> y))
			}
		}
	default:
		return 0, false
	}
	if !wide {
		v = uint64(uint32(v))
	}
	return v, true
}

// swap is a byte-order conversion of a known value (this is a little-endian target).
func swap(op asm.OpCode, x uint64, width int64) value {
	toBE := op.Class() == asm.ALU64Class || op.Endianness() == asm.BE // ALU64: bswap
	var v uint64
	switch width {
	case 16:
		v = uint64(uint16(x))
		if toBE {
			v = uint64(bits.ReverseBytes16(uint16(x)))
		}
	case 32:
		v = uint64(uint32(x))
		if toBE {
			v = uint64(bits.ReverseBytes32(uint32(x)))
		}
	case 64:
		v = x
		if toBE {
			v = bits.ReverseBytes64(x)
		}
	default:
		return value{}
	}
	return value{k: known, v: v}
}

// movImm is one instruction that sets dst to v, if there is one.
func movImm(dst asm.Register, v uint64) (asm.Instruction, bool) {
	if v <= math.MaxUint32 {
		return asm.Mov.Imm32(dst, int32(uint32(v))), true // zero-extends
	}
	if s := int64(v); s >= math.MinInt32 && s <= math.MaxInt32 {
		return asm.Mov.Imm(dst, int32(s)), true // sign-extends
	}
	return asm.Instruction{}, false
}

// imm is v as an instruction's immediate: all of a 32-bit operand, or a 64-bit one that
// sign-extends from 32 bits.
func imm(v uint64, wide bool) (int64, bool) {
	if !wide {
		return int64(int32(uint32(v))), true
	}
	s := int64(v)
	return s, s >= math.MinInt32 && s <= math.MaxInt32
}

// aluImm is a known source operand as an immediate, where the verifier takes it: no shift
// by the width or more, no division by zero.
func aluImm(op asm.ALUOp, v uint64, wide bool) (int64, bool) {
	width := uint64(32)
	if wide {
		width = 64
	} else {
		v = uint64(uint32(v))
	}
	switch op {
	case asm.LSh, asm.RSh, asm.ArSh:
		if v >= width {
			return 0, false
		}
	case asm.Div, asm.Mod:
		if v == 0 {
			return 0, false
		}
	case asm.Add, asm.Sub, asm.Mul, asm.Or, asm.And, asm.Xor:
	default:
		return 0, false
	}
	return imm(v, wide)
}

// identity: a 64-bit operation with an immediate that leaves its register as it is (a 32-bit
// one would still clear the upper half).
func identity(ins asm.Instruction) bool {
	op := ins.OpCode
	if op.Class() != asm.ALU64Class || op.Source() != asm.ImmSource || ins.Offset != 0 {
		return false
	}
	switch op.ALUOp() {
	case asm.Add, asm.Sub, asm.Or, asm.Xor, asm.LSh, asm.RSh, asm.ArSh:
		return ins.Constant == 0
	case asm.Mul, asm.Div:
		return ins.Constant == 1
	case asm.And:
		return ins.Constant == -1
	}
	return false
}

// swapped is the jump that compares its operands the other way round.
var swapped = map[asm.JumpOp]asm.JumpOp{
	asm.JEq: asm.JEq, asm.JNE: asm.JNE, asm.JSet: asm.JSet,
	asm.JGT: asm.JLT, asm.JGE: asm.JLE, asm.JLT: asm.JGT, asm.JLE: asm.JGE,
	asm.JSGT: asm.JSLT, asm.JSGE: asm.JSLE, asm.JSLT: asm.JSGT, asm.JSLE: asm.JSGE,
}

// opJa is the unconditional jump with a 16-bit offset; with offset 0 it is a nop, which the
// verifier removes.
var opJa = asm.OpCode(asm.JumpClass).SetJumpOp(asm.Ja)

func nop() asm.Instruction { return asm.Instruction{OpCode: opJa} }

func isNop(ins asm.Instruction) bool { return ins.OpCode == opJa && ins.Offset == 0 }

// replace puts ins in place of instruction i, keeping its symbol, source line and BTF
// metadata but no map reference.
func (p *program) replace(i int, ins asm.Instruction) {
	p.insns[i] = ins.WithMetadata(p.insns[i].Metadata).WithReference("")
}

// rewrite turns loads and computations of known values into immediates and settles the
// jumps whose operands are known.
func (p *program) rewrite() (loads, branches int) {
	for i, ins := range p.insns {
		r := p.in[i]
		if r == nil {
			continue
		}
		op := ins.OpCode
		if btf.CORERelocationMetadata(&p.insns[i]) != nil {
			continue
		}
		switch {
		case op.Class() == asm.LdXClass:
			if v := p.load(ins, r[ins.Src]); v.k == known {
				m, ok := movImm(ins.Dst, v.v)
				if !ok {
					m = asm.LoadImm(ins.Dst, int64(v.v), asm.DWord) // two slots: offsets are redone
				}
				p.replace(i, m)
				loads++
			}
		case op.Class().IsALU():
			if op.ALUOp() == asm.Mov && op.Source() == asm.ImmSource {
				break
			}
			if v := alu(ins, *r); v.k == known {
				if m, ok := movImm(ins.Dst, v.v); ok {
					p.replace(i, m)
				}
				break
			}
			if op.ALUOp() != asm.Swap && op.Source() == asm.RegSource && ins.Offset == 0 && r[ins.Src].k == known {
				if c, ok := aluImm(op.ALUOp(), r[ins.Src].v, op.Class() == asm.ALU64Class); ok {
					ins.OpCode = op.SetSource(asm.ImmSource)
					ins.Src, ins.Constant = asm.R0, c
					p.replace(i, ins)
				}
			}
			if identity(p.insns[i]) {
				p.replace(i, nop())
			}
		case isJump(ins) && op.JumpOp() != asm.Ja:
			if taken, ok := p.decide(ins, r); ok {
				if taken {
					p.replace(i, asm.Instruction{OpCode: opJa, Offset: ins.Offset})
				} else {
					p.replace(i, nop())
				}
				branches++
				break
			}
			if op.Source() != asm.RegSource {
				break
			}
			wide := op.Class() == asm.JumpClass
			jop, a, b := op.JumpOp(), ins.Dst, ins.Src
			if r[a].k == known && r[b].k != known { // compare the other way round
				other, ok := swapped[jop]
				if !ok {
					break
				}
				jop, a, b = other, b, a
			}
			if c, ok := imm(r[b].v, wide); ok && r[b].k == known {
				ins.OpCode = op.SetJumpOp(jop).SetSource(asm.ImmSource)
				ins.Dst, ins.Src, ins.Constant = a, asm.R0, c
				p.replace(i, ins)
			}
		}
	}
	return loads, branches
}

// regMask is a set of registers r0-r9.
type regMask uint16

func bit(r asm.Register) regMask {
	if r > asm.R9 {
		return 0
	}
	return 1 << r
}

const argRegs = regMask(0b111110) // r1-r5
const callerSaved = argRegs | 1   // r0-r5

// helperArgs is how many arguments the helpers a tc program commonly calls take; a helper
// not listed is taken to read all five argument registers.
var helperArgs = map[asm.BuiltinFunc]int{
	asm.FnMapLookupElem:        2,
	asm.FnMapUpdateElem:        4,
	asm.FnMapDeleteElem:        2,
	asm.FnGetPrandomU32:        0,
	asm.FnGetSmpProcessorId:    0,
	asm.FnKtimeGetNs:           0,
	asm.FnKtimeGetBootNs:       0,
	asm.FnKtimeGetCoarseNs:     0,
	asm.FnJiffies64:            0,
	asm.FnSkbLoadBytes:         4,
	asm.FnSkbPullData:          2,
	asm.FnRingbufOutput:        4,
	asm.FnRingbufReserve:       3,
	asm.FnRingbufSubmit:        2,
	asm.FnRingbufDiscard:       2,
	asm.FnRingbufQuery:         2,
	asm.FnPerfEventOutput:      5,
	asm.FnTailCall:             3,
	asm.FnProbeReadKernel:      3,
	asm.FnGetCurrentPidTgid:    0,
	asm.FnGetNumaNodeId:        0,
	asm.FnSkbLoadBytesRelative: 5,
}

// useDef: the registers instruction i reads and writes, and whether it has an effect beyond
// what it writes to registers. A call reads the argument registers its callee reads (live
// holds the callee's liveness as far as known).
func (p *program) useDef(i int, live []regMask) (use, def regMask, effect bool) {
	ins := p.insns[i]
	if ins.IsFunctionCall() {
		f, ok := p.funcs[ins.Reference()]
		if !ok {
			return argRegs, callerSaved, true
		}
		if fn := btf.FuncMetadata(&p.insns[f]); fn != nil {
			// As many as its prototype has: the verifier checks a global function's
			// arguments against it whether the function reads them or not.
			if proto, ok := fn.Type.(*btf.FuncProto); ok && len(proto.Params) <= 5 {
				return argRegs & (1<<(len(proto.Params)+1) - 1), callerSaved, true
			}
			return argRegs, callerSaved, true
		}
		if p.in[f] != nil {
			return p.liveIn(f, live) & argRegs, callerSaved, true
		}
		return argRegs, callerSaved, true
	}
	if ins.IsBuiltinCall() {
		n, ok := helperArgs[asm.BuiltinFunc(ins.Constant)]
		if !ok {
			n = 5
		}
		return argRegs & (1<<(n+1) - 1), callerSaved, true
	}
	return useDef(ins)
}

// useDef for an instruction that is no call to a known function or helper.
func useDef(ins asm.Instruction) (use, def regMask, effect bool) {
	op := ins.OpCode
	switch cls := op.Class(); {
	case op == asm.LoadImmOp(asm.DWord):
		return 0, bit(ins.Dst), false
	case cls == asm.LdClass:
		return bit(asm.R6) | bit(ins.Src), callerSaved, true
	case cls == asm.LdXClass:
		return bit(ins.Src), bit(ins.Dst), op.Mode() != asm.MemMode
	case cls == asm.StClass:
		return bit(ins.Dst), 0, true
	case cls == asm.StXClass:
		if op.Mode() == asm.AtomicMode {
			return bit(ins.Dst) | bit(ins.Src) | bit(asm.R0), 0, true
		}
		return bit(ins.Dst) | bit(ins.Src), 0, true
	case cls.IsALU():
		use = bit(ins.Dst)
		if op.ALUOp() == asm.Mov {
			use = 0
		}
		if op.ALUOp() != asm.Swap && op.Source() == asm.RegSource {
			use |= bit(ins.Src)
		}
		return use, bit(ins.Dst), false
	case cls.IsJump():
		switch op.JumpOp() {
		case asm.Exit:
			return bit(asm.R0), 0, true
		case asm.Call:
			return argRegs, callerSaved, true
		case asm.Ja:
			return 0, 0, true
		}
		use = bit(ins.Dst)
		if op.Source() == asm.RegSource {
			use |= bit(ins.Src)
		}
		return use, 0, true
	}
	return 0xffff, 0, true
}

// removeDead marks what is never reached, and computations whose result is never read,
// repeating as removals make others dead.
func (p *program) removeDead() {
	for i := range p.insns {
		p.dead[i] = p.in[i] == nil || (isNop(p.insns[i]) && !p.start[i])
	}
	succ := make([][2]int, len(p.insns))
	nsucc := make([]uint8, len(p.insns))
	for i := range p.insns {
		if p.in[i] != nil {
			var n int
			succ[i], n = p.successors(i, p.in[i])
			nsucc[i] = uint8(n)
		}
	}
	live := make([]regMask, len(p.insns)) // live after each instruction
	for changed := true; changed; {
		changed = false
		// Backward liveness to a fixed point over the reached instructions.
		for again := true; again; {
			again = false
			for i := len(p.insns) - 1; i >= 0; i-- {
				if p.in[i] == nil {
					continue
				}
				var out regMask
				for _, s := range succ[i][:nsucc[i]] {
					out |= p.liveIn(s, live)
				}
				if out != live[i] {
					live[i], again = out, true
				}
			}
		}
		for i := range p.insns {
			if p.dead[i] || p.in[i] == nil {
				continue
			}
			_, def, effect := p.useDef(i, live)
			if !effect && def&live[i] == 0 {
				p.dead[i], changed = true, true
			}
		}
	}
	for i := range p.insns {
		if p.dead[i] && p.start[i] && p.in[i] != nil && !isNop(p.insns[i]) {
			// A function keeps its first instruction: it carries the function's BTF.
			p.replace(i, nop())
		}
	}
}

func (p *program) liveIn(i int, live []regMask) regMask {
	if p.dead[i] {
		return live[i]
	}
	use, def, _ := p.useDef(i, live)
	return use | live[i]&^def
}

// emit is the program without its dead instructions, with jump offsets recomputed.
func (p *program) emit() (asm.Instructions, int, error) {
	keep := func(i int) bool { return !p.dead[i] || (p.start[i] && p.in[i] != nil) }
	newSlot := make([]int, len(p.insns)+1)
	s := 0
	for i := range p.insns {
		newSlot[i] = s
		if keep(i) {
			s += int(p.insns[i].Width())
		}
	}
	newSlot[len(p.insns)] = s
	// A jump to a dropped instruction goes to the next kept one: only instructions that fall
	// through (dead computations, nops) are dropped where they are reached.
	resolve := func(t int) (int, error) {
		for ; t < len(p.insns); t++ {
			if keep(t) {
				return t, nil
			}
			if p.in[t] == nil {
				return 0, fmt.Errorf("jump to unreached insn %d", t)
			}
		}
		return 0, errors.New("jump past the end")
	}
	out := make(asm.Instructions, 0, len(p.insns))
	removed := 0
	for i, ins := range p.insns {
		if !keep(i) {
			removed++
			continue
		}
		if isJump(ins) && !isNop(ins) {
			t, _ := p.target(i)
			t, err := resolve(t)
			if err != nil {
				return nil, 0, fmt.Errorf("insn %d: %w", i, err)
			}
			off := newSlot[t] - newSlot[i] - 1
			if off < math.MinInt16 || off > math.MaxInt16 {
				return nil, 0, fmt.Errorf("insn %d: jump offset %d", i, off)
			}
			ins.Offset = int16(off)
		}
		out = append(out, ins)
	}
	return out, removed, nil
}
