set terminal pngcairo size 1000,480 font 'DejaVu Sans,10'
set output '/work/main/benches/results/soak/soak.png'
set title 'Soak: Envoy RSS per sidecar and Warden VM memory (backend); dashed: key rotation, issuer down, issuer back'
set xlabel 'seconds'
set ylabel 'MiB'
set yrange [0:*]
set grid
set key bottom right
set arrow from 180, graph 0 to 180, graph 1 nohead dt 2 lc rgb '0x999999'
set arrow from 300, graph 0 to 300, graph 1 nohead dt 2 lc rgb '0x999999'
set arrow from 420, graph 0 to 420, graph 1 nohead dt 2 lc rgb '0x999999'
plot '/work/main/benches/results/soak/soak.tsv' using 1:2 with linespoints title 'frontend RSS', '/work/main/benches/results/soak/soak.tsv' using 1:3 with linespoints title 'backend RSS', '/work/main/benches/results/soak/soak.tsv' using 1:4 with linespoints title 'intruder RSS', '/work/main/benches/results/soak/soak.tsv' using 1:5 with linespoints title 'backend Warden VMs'
