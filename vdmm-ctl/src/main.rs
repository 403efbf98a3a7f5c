fn main() {
    println!("{}", vdmm_ctl::EBPF_OBJECT.len());
}
