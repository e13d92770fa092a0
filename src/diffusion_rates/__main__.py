from diffusion_rates.app import main

main()
