import Image from 'next/image'
import hero from './hero.images.yaml'
import art from './art.images.yaml'
import Hydrated from './hydrated'

export default function Page() {
  const { banner } = art
  return (
    <main>
      <h1>Next.js</h1>
      {/* eslint-disable-next-line @next/next/no-img-element */}
      <img id="hero" src={hero.src} srcSet={hero.srcset} sizes={`${hero.width}px`} width={hero.width} height={hero.height} alt={hero.alt} />
      <Image id="hero-image" src={hero} alt={hero.alt} loading="eager" />
      <Image id="banner-image" src={banner} alt={banner.alt} placeholder="blur" loading="eager" />
      <Hydrated />
    </main>
  )
}
