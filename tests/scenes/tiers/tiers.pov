// A test scene with two tiers of cost: glowing media fills the whole view
// (Samples sets how dear, pass Declare=Samples=N), and a second, denser
// layer of it sits in front of the top quarter (TopSamples), or between the
// heights TopLow and TopHigh if given.
#version 3.7;
global_settings { assumed_gamma 1.0 }
#ifndef (Samples) #declare Samples = 40; #end
#ifndef (TopSamples) #declare TopSamples = 400; #end
#ifndef (TopLow) #declare TopLow = 1.1; #end
#ifndef (TopHigh) #declare TopHigh = 3; #end
camera { location <0, 0, -4> look_at 0 }
#macro Glow(Low, High, Count)
  box {
    Low, High
    hollow
    pigment { rgbt 1 }
    interior {
      media {
        emission 0.6
        method 3
        intervals 1
        samples Count, Count
        density { granite color_map { [0 rgb 0] [0.5 rgb <0.2, 0.4, 1>] [1 rgb <1, 0.6, 0.2>] } scale 1.5 }
      }
    }
  }
#end
Glow(<-3, -3, -1>, <3, 3, 1>, Samples)
Glow(<-3, TopLow, -1.6>, <3, TopHigh, -1.1>, TopSamples)
