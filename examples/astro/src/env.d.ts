/// <reference types="astro/client" />
/// <reference types="unplugin-imagegen/client" />
