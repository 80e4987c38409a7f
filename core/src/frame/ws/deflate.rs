//! permessage-deflate's raw DEFLATE streams (flate2 over zlib-rs): the inflater a
//! decoder keeps and the thread-local compressor the encoder uses.
