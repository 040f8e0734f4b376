// A test scene whose cost is even across rows and set by Samples
// (pass Declare=Samples=N): glowing media fills the whole view.
#version 3.7;
global_settings { assumed_gamma 1.0 }
#ifndef (Samples) #declare Samples = 40; #end
camera { location <0, 0, -4> look_at 0 }
box {
  <-3, -3, -1>, <3, 3, 1>
  hollow
  pigment { rgbt 1 }
  interior {
    media {
      emission 0.6
      method 3
      intervals 1
      samples Samples, Samples
      density { granite color_map { [0 rgb 0] [0.5 rgb <0.2, 0.4, 1>] [1 rgb <1, 0.6, 0.2>] } scale 1.5 }
    }
  }
}
