// A test scene whose cost sits in the top quarter of the view: glowing
// media there (Samples sets how dear, pass Declare=Samples=N), a plain
// checkered floor below.
#version 3.7;
global_settings { assumed_gamma 1.0 }
#ifndef (Samples) #declare Samples = 200; #end
camera { location <0, 0, -4> look_at 0 }
light_source { <-5, 10, -10> rgb 1 }
box {
  <-4, 1.1, -1>, <4, 4, 1>
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
plane { y, -1 pigment { checker rgb 0.2 rgb 0.8 } }
